//! Compiles the repository's `proto/raft.proto` (the top-level `proto/`
//! folder, beside this crate) with the vendored `protoc`, so building needs
//! no system protobuf compiler.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // raft/ -> the repository's top-level proto/.
    let protos = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the raft crate has no parent folder")?
        .join("proto");
    let proto = protos.join("raft.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    tonic_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&[&proto], &[&protos])?;
    Ok(())
}
