//! Compiles `scimflow.proto` with prost. Prefers `$PROTOC` (e.g. Debian's protobuf-compiler) and
//! falls back to the vendored protoc so a fresh machine needs no system package.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=scimflow.proto");
    println!("cargo:rerun-if-env-changed=PROTOC");
    if std::env::var_os("PROTOC").is_none() {
        let vendored = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY: build scripts are single-threaded; nothing else reads the environment here.
        unsafe { std::env::set_var("PROTOC", vendored) };
    }
    prost_build::Config::new().compile_protos(&["scimflow.proto"], &["."])?;
    Ok(())
}
