//! The national register number parser: any input, valid UTF-8 or not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partnergate_core::insz::Insz;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(i) = Insz::parse(&text) {
        // What is accepted is 11 digits that parse again to the same number.
        assert_eq!(i.as_str().len(), 11);
        assert!(i.as_str().bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(Insz::parse(i.as_str()).ok().as_ref(), Some(&i));
        let _ = (i.is_bis(), i.born_from_2000(), i.birth_date());
    }
});
