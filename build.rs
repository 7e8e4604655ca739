// Embedded sqlx migrations must trigger a rebuild when a new file appears.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
