//! Rebuilds the binary when an embedded template changes (`stack new` embeds `templates/`).

fn main() {
    println!("cargo:rerun-if-changed=templates");
}
