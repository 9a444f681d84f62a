//! Small OCI image layouts written on the fly for registry tests.

use std::collections::BTreeMap;
use std::path::Path;

use deploy_core::kinds::image::layout::OciLayout;
use deploy_core::oci::{Descriptor, Digest, Index, Manifest, OCI_INDEX, OCI_MANIFEST};

/// Makes `dir` an empty OCI layout.
pub fn empty_layout(dir: &Path) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("write");
}

/// Writes `bytes` as a blob of the layout at `dir`; returns its descriptor.
pub fn blob(dir: &Path, media_type: &str, bytes: &[u8]) -> Descriptor {
    let digest = Digest::of(bytes);
    std::fs::write(dir.join("blobs/sha256").join(digest.hex()), bytes).expect("write blob");
    Descriptor {
        media_type: media_type.into(),
        digest,
        size: bytes.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
    }
}

/// Writes a config for `arch`, one layer and their manifest into the layout at `dir`; returns
/// the manifest's descriptor.
pub fn image_blobs(dir: &Path, arch: &str, layer: &[u8]) -> Descriptor {
    let config = blob(
        dir,
        "application/vnd.oci.image.config.v1+json",
        format!(
            r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        )
        .as_bytes(),
    );
    let layer = blob(dir, "application/vnd.oci.image.layer.v1.tar", layer);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        config,
        layers: vec![layer],
    };
    blob(
        dir,
        OCI_MANIFEST,
        &serde_json::to_vec(&manifest).expect("json"),
    )
}

/// Writes the layout's `index.json` naming `root`.
pub fn write_top_index(dir: &Path, root: Descriptor) {
    let top = Index {
        schema_version: 2,
        media_type: Some(OCI_INDEX.into()),
        manifests: vec![root],
    };
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&top).expect("json"),
    )
    .expect("write");
}

/// Replaces the layout at `dir` with a one-layer image whose layer is `layer`, tagged
/// `latest`; returns the image's digest.
pub fn tiny_layout(dir: &Path, layer: &[u8]) -> Digest {
    let _ = std::fs::remove_dir_all(dir);
    empty_layout(dir);
    let mut root = image_blobs(dir, "amd64", layer);
    root.annotations
        .insert("org.opencontainers.image.ref.name".into(), "latest".into());
    let digest = root.digest.clone();
    write_top_index(dir, root);
    digest
}

/// A one-layer image whose layer is `size` bytes of pseudo-random data, as an OCI layout.
pub fn sized_layout(size: usize) -> OciLayout {
    let dir = crate::scratch_dir("sized-layout");
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ size as u64;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    tiny_layout(&dir, &bytes);
    OciLayout::open(&dir).expect("layout")
}
