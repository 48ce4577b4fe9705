// `sqlx::migrate!` embeds the migration folders and `include_dir!` the default definitions
// at compile time; rebuild when any of them changes.
fn main() {
    for dir in ["../migrations", "../workflows", "../rules", "../templates"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
