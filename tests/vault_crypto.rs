//! Behaviour of the key hierarchy and field sealing, through the public API only.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use partnergate::vault::crypto::{CryptoError, DataKey, ParticipantId};
use partnergate::vault::insz::Insz;
use partnergate::vault::keys::{IndexKeys, IndexSecret, MasterKeyring};

fn participant() -> ParticipantId {
    ParticipantId::generate().unwrap()
}

fn index_keys() -> IndexKeys {
    IndexKeys::derive(&IndexSecret::generate().unwrap())
}

#[test]
fn sealed_field_round_trips() {
    let dek = DataKey::generate().unwrap();
    let p = participant();
    let sealed = dek
        .seal(
            &p,
            "life.income_debt",
            1,
            "Schuldbemiddeling lopende".as_bytes(),
        )
        .unwrap();
    let opened = dek.open(&p, "life.income_debt", 1, &sealed).unwrap();
    assert_eq!(&opened[..], "Schuldbemiddeling lopende".as_bytes());
}

#[test]
fn tampered_ciphertext_fails() {
    let dek = DataKey::generate().unwrap();
    let p = participant();
    let sealed = dek.seal(&p, "health.addiction", 1, b"alcohol").unwrap();
    for i in 0..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 0x01;
        assert!(matches!(
            dek.open(&p, "health.addiction", 1, &bad),
            Err(CryptoError::Decrypt)
        ));
    }
    let mut truncated = sealed.clone();
    truncated.pop();
    assert!(dek.open(&p, "health.addiction", 1, &truncated).is_err());
}

#[test]
fn ciphertext_moved_to_another_field_fails() {
    let dek = DataKey::generate().unwrap();
    let p = participant();
    let sealed = dek.seal(&p, "health.addiction", 1, b"alcohol").unwrap();
    assert!(matches!(
        dek.open(&p, "life.housing", 1, &sealed),
        Err(CryptoError::Decrypt)
    ));
}

#[test]
fn ciphertext_moved_to_another_participant_fails() {
    let dek = DataKey::generate().unwrap();
    let (a, b) = (participant(), participant());
    let sealed = dek.seal(&a, "identity.given_name", 1, b"Ann").unwrap();
    assert!(matches!(
        dek.open(&b, "identity.given_name", 1, &sealed),
        Err(CryptoError::Decrypt)
    ));
}

#[test]
fn opening_with_wrong_dek_version_fails() {
    let dek = DataKey::generate().unwrap();
    let p = participant();
    let sealed = dek.seal(&p, "identity.given_name", 2, b"Ann").unwrap();
    assert!(dek.open(&p, "identity.given_name", 1, &sealed).is_err());
    assert!(dek.open(&p, "identity.given_name", 3, &sealed).is_err());
}

#[test]
fn opening_with_another_data_key_fails() {
    let p = participant();
    let sealed = DataKey::generate()
        .unwrap()
        .seal(&p, "identity.given_name", 1, b"Ann")
        .unwrap();
    let other = DataKey::generate().unwrap();
    assert!(other.open(&p, "identity.given_name", 1, &sealed).is_err());
}

#[test]
fn wrapped_data_key_unwraps_and_opens_fields() {
    let ring = MasterKeyring::generate().unwrap();
    let p = participant();
    let dek = DataKey::generate().unwrap();
    let sealed = dek
        .seal(&p, "contact.phone", 1, b"+32 470 12 34 56")
        .unwrap();
    let wrapped = ring.wrap(&p, &dek).unwrap();
    assert_eq!(wrapped.master_version, 1);
    drop(dek);
    let dek = ring.unwrap(&p, &wrapped).unwrap();
    assert_eq!(
        &dek.open(&p, "contact.phone", 1, &sealed).unwrap()[..],
        b"+32 470 12 34 56"
    );
}

#[test]
fn unwrap_with_wrong_participant_fails() {
    let ring = MasterKeyring::generate().unwrap();
    let dek = DataKey::generate().unwrap();
    let wrapped = ring.wrap(&participant(), &dek).unwrap();
    assert!(matches!(
        ring.unwrap(&participant(), &wrapped),
        Err(CryptoError::Decrypt)
    ));
}

#[test]
fn unwrap_with_claimed_other_master_version_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    MasterKeyring::generate_file(&path).unwrap();
    MasterKeyring::add_version_to_file(&path).unwrap();
    let ring = MasterKeyring::load(&path).unwrap();
    let p = participant();
    let mut wrapped = ring.wrap(&p, &DataKey::generate().unwrap()).unwrap();
    wrapped.master_version = 1;
    assert!(ring.unwrap(&p, &wrapped).is_err());
}

#[test]
fn after_rotation_old_wraps_unwrap_and_rewrap_under_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let v1 = MasterKeyring::generate_file(&path).unwrap();
    assert_eq!(v1.current_version(), 1);

    let p = participant();
    let dek = DataKey::generate().unwrap();
    let sealed = dek.seal(&p, "life.housing", 1, b"Sociale woning").unwrap();
    let old_wrap = v1.wrap(&p, &dek).unwrap();
    let secret = IndexSecret::generate().unwrap();
    let pid_before = IndexKeys::derive(&secret).pid_for("vdab", &p);
    let old_secret_wrap = secret.wrap(&v1).unwrap();

    assert_eq!(MasterKeyring::add_version_to_file(&path).unwrap(), 2);
    let v2 = MasterKeyring::load(&path).unwrap();
    assert_eq!(v2.versions(), vec![1, 2]);
    assert_eq!(v2.current_version(), 2);

    // The old wrap still opens with the old version held in the keyring.
    assert!(v2.needs_rewrap(&old_wrap));
    let unwrapped = v2.unwrap(&p, &old_wrap).unwrap();
    assert_eq!(
        &unwrapped.open(&p, "life.housing", 1, &sealed).unwrap()[..],
        b"Sociale woning"
    );

    // Re-wrapping moves it to version 2; the field ciphertext is untouched.
    let new_wrap = v2.rewrap(&p, &old_wrap).unwrap();
    assert_eq!(new_wrap.master_version, 2);
    assert!(!v2.needs_rewrap(&new_wrap));
    let dek2 = v2.unwrap(&p, &new_wrap).unwrap();
    assert_eq!(
        &dek2.open(&p, "life.housing", 1, &sealed).unwrap()[..],
        b"Sociale woning"
    );

    // The index secret re-wraps too, and pids stay stable across master rotation.
    let new_secret_wrap = IndexSecret::rewrap(&v2, &old_secret_wrap).unwrap();
    assert_eq!(new_secret_wrap.master_version, 2);
    let secret2 = IndexSecret::unwrap_from(&v2, &new_secret_wrap).unwrap();
    assert_eq!(IndexKeys::derive(&secret2).pid_for("vdab", &p), pid_before);
}

#[test]
fn retiring_a_version_makes_its_wraps_fail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let v1 = MasterKeyring::generate_file(&path).unwrap();
    let p = participant();
    let old_wrap = v1.wrap(&p, &DataKey::generate().unwrap()).unwrap();
    let old_secret = IndexSecret::generate().unwrap().wrap(&v1).unwrap();

    MasterKeyring::add_version_to_file(&path).unwrap();
    let v2 = MasterKeyring::load(&path).unwrap();
    let new_wrap = v2.rewrap(&p, &old_wrap).unwrap();

    assert_eq!(
        MasterKeyring::retire_versions_below(&path, 2).unwrap(),
        vec![1]
    );
    let ring = MasterKeyring::load(&path).unwrap();
    assert_eq!(ring.versions(), vec![2]);
    assert!(matches!(
        ring.unwrap(&p, &old_wrap),
        Err(CryptoError::UnknownMasterVersion(1))
    ));
    assert!(IndexSecret::unwrap_from(&ring, &old_secret).is_err());
    assert!(ring.unwrap(&p, &new_wrap).is_ok());
    // The retired file keeps mode 0600.
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn the_current_version_cannot_be_retired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    MasterKeyring::generate_file(&path).unwrap();
    assert!(MasterKeyring::retire_versions_below(&path, 2).is_err());
    assert_eq!(MasterKeyring::load(&path).unwrap().versions(), vec![1]);
}

#[test]
fn pids_differ_per_partner_are_stable_and_resolve_back() {
    let keys = index_keys();
    let p = participant();
    let vdab = keys.pid_for("vdab", &p);
    let ocmw = keys.pid_for("ocmw-gent", &p);
    assert_ne!(vdab, ocmw);
    assert_eq!(keys.pid_for("vdab", &p), vdab);
    assert_eq!(keys.resolve_pid("vdab", vdab.as_str()), Some(p));
    assert_eq!(keys.resolve_pid("ocmw-gent", ocmw.as_str()), Some(p));
}

#[test]
fn a_pid_of_partner_a_resolves_under_partner_b_to_another_id() {
    let keys = index_keys();
    let p = participant();
    let pid_a = keys.pid_for("jobandco", &p);
    let resolved = keys.resolve_pid("vdab", pid_a.as_str()).unwrap();
    assert_ne!(resolved, p);
}

#[test]
fn malformed_pids_resolve_to_none() {
    let keys = index_keys();
    let long = "a".repeat(10_000);
    for bad in [
        "",
        "abc",
        "0123456789abcdef0123456789abcde",
        "0123456789abcdef0123456789abcdef0",
        "0123456789ABCDEF0123456789ABCDEF",
        "0123456789abcdef0123456789abcdeg",
        "../../etc/passwd000000000000000",
        "ééééééééééééééee",
        long.as_str(),
    ] {
        assert_eq!(keys.resolve_pid("vdab", bad), None, "{bad:?}");
    }
}

#[test]
fn pids_come_from_the_index_secret_not_the_instance() {
    let p = participant();
    assert_ne!(
        index_keys().pid_for("vdab", &p),
        index_keys().pid_for("vdab", &p)
    );
}

#[test]
fn insz_lookup_hash_and_audit_pseudonym_are_stable_and_unlinkable() {
    let keys = index_keys();
    let insz = Insz::parse("93.05.18-223.61").unwrap();
    assert_eq!(
        keys.insz_lookup_hash(&insz),
        keys.insz_lookup_hash(&Insz::parse("93051822361").unwrap())
    );
    let p = participant();
    let audit = keys.audit_pseudonym(&p);
    assert_eq!(audit, keys.audit_pseudonym(&p));
    assert_ne!(audit, keys.pid_for("vdab", &p).into_string());
    assert_ne!(audit, hex::encode(&keys.insz_lookup_hash(&insz)[..16]));
}

#[test]
fn key_file_is_created_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("master.key");
    MasterKeyring::generate_file(&path).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = fs::read_to_string(&path).unwrap();
    let line = text.lines().find(|l| l.starts_with('v')).unwrap();
    assert!(line.starts_with("v1:") && line.len() == 3 + 64);
    MasterKeyring::add_version_to_file(&path).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // No temporary files left behind.
    assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
}

#[test]
fn an_existing_key_file_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    MasterKeyring::generate_file(&path).unwrap();
    let before = fs::read(&path).unwrap();
    assert!(MasterKeyring::generate_file(&path).is_err());
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn a_0644_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    MasterKeyring::generate_file(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let err = MasterKeyring::load(&path).unwrap_err().to_string();
    assert!(err.contains("group or others"), "{err}");
    assert!(err.contains("0644"), "{err}");
    assert!(MasterKeyring::add_version_to_file(&path).is_err());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    assert!(MasterKeyring::load(&path).is_err());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    assert!(MasterKeyring::load(&path).is_ok());
}

#[test]
fn keyring_parses_from_environment_text() {
    let text = format!("v7:{}\n", "5a".repeat(32));
    let a = MasterKeyring::parse(&text).unwrap();
    let b = MasterKeyring::parse(&text).unwrap();
    assert_eq!(a.current_version(), 7);
    let p = participant();
    let dek = DataKey::generate().unwrap();
    let wrapped = a.wrap(&p, &dek).unwrap();
    assert!(b.unwrap(&p, &wrapped).is_ok());
}

#[test]
fn key_errors_do_not_echo_key_material() {
    let secret = "5a".repeat(31) + "zz";
    let err = MasterKeyring::parse(&format!("v1:{secret}")).unwrap_err();
    assert!(!err.to_string().contains("5a5a"));
    assert!(!format!("{err:?}").contains("5a5a"));
}

#[test]
fn debug_of_keys_shows_no_bytes() {
    let text = format!("v1:{}\n", "5a".repeat(32));
    let ring = MasterKeyring::parse(&text).unwrap();
    let dek = DataKey::generate().unwrap();
    let secret = IndexSecret::generate().unwrap();
    let keys = IndexKeys::derive(&secret);
    let p = participant();
    let wrapped = ring.wrap(&p, &dek).unwrap();
    let printed = [
        format!("{ring:?}"),
        format!("{dek:?}"),
        format!("{secret:?}"),
        format!("{keys:?}"),
        format!("{p:?}"),
        format!("{wrapped:?}"),
        format!("{:?}", keys.partner("vdab")),
    ];
    for s in &printed {
        assert!(!s.contains("5a5a"), "{s}");
        assert!(!s.contains(&hex::encode(p.as_bytes())), "{s}");
        assert!(!s.contains(&hex::encode(&wrapped.bytes)), "{s}");
        // No run of 16+ hex digits (would indicate printed bytes).
        let longest_hex_run = s
            .split(|c: char| !c.is_ascii_hexdigit())
            .map(str::len)
            .max()
            .unwrap_or(0);
        assert!(longest_hex_run < 16, "{s}");
    }
    assert_eq!(format!("{dek:?}"), "DataKey(..)");
    assert_eq!(format!("{p:?}"), "ParticipantId(..)");
}
