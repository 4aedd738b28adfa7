//! Generated protobuf types of the command log and change events (`proto/scimflow.proto`).
include!(concat!(env!("OUT_DIR"), "/scimflow.v1.rs"));
