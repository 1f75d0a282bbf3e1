//! Compiles `proto/raft.proto` with the vendored `protoc`, so building needs
//! no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../proto/raft.proto";
    println!("cargo:rerun-if-changed={proto}");
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    tonic_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&[proto], &["../proto"])?;
    Ok(())
}
