//! The `stack` executable: everything lives in the library; this only hands over.

fn main() -> std::process::ExitCode {
    stack::main()
}
