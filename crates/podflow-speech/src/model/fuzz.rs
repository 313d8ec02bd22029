//! Fuzzing (property-based, on stable, so CI runs it) of the model file readers: a
//! `model.bin` is a download, and `PODFLOW_WHISPER_MODEL` may point anywhere. Inputs are
//! raw bytes, and files in CTranslate2's layout whose variables have the names the
//! converter looks for but hostile ranks (0 to 4), dimensions (0, huge), types and byte
//! counts (short, or claiming more than the file holds).
//!
//! Invariants: in `fuzz_check.rs`, which the cargo-fuzz target shares.

use std::{io::Cursor, path::Path};

use proptest::prelude::*;

use super::{
    ct2_file::{Ct2Model, Tensors},
    fuzz_check::check,
    ggml::{WeightType, write_ggml},
};

/// The variables the converter reads: the model's own, and one encoder layer's.
const NAMES: &[&str] = &[
    "encoder/conv1/weight",
    "encoder/conv1/bias",
    "encoder/conv2/weight",
    "encoder/conv2/bias",
    "encoder/position_encodings/encodings",
    "encoder/layer_norm/gamma",
    "encoder/layer_norm/beta",
    "decoder/embeddings/weight",
    "decoder/position_encodings/encodings",
    "decoder/layer_norm/gamma",
    "decoder/layer_norm/beta",
    "encoder/num_heads",
    "encoder/layer_0/self_attention/linear_0/weight",
    "encoder/layer_0/self_attention/linear_0/bias",
    "encoder/layer_0/self_attention/linear_1/weight",
    "encoder/layer_0/self_attention/linear_1/bias",
    "encoder/layer_0/self_attention/layer_norm/gamma",
    "encoder/layer_0/self_attention/layer_norm/beta",
    "encoder/layer_0/ffn/linear_0/weight",
    "encoder/layer_0/ffn/linear_0/bias",
    "encoder/layer_0/ffn/linear_1/weight",
    "encoder/layer_0/ffn/linear_1/bias",
    "encoder/layer_0/ffn/layer_norm/gamma",
    "encoder/layer_0/ffn/layer_norm/beta",
];

/// One variable: name, dims, dtype, bytes, and the byte count written (a lie, sometimes).
type Var = (String, Vec<u32>, u8, Vec<u8>, Option<u32>);

/// A `model.bin` holding `vars`, in CTranslate2's layout.
fn ct2_bytes(vars: &[Var]) -> Vec<u8> {
    let mut out = 6u32.to_le_bytes().to_vec();
    let string = |out: &mut Vec<u8>, s: &str| {
        out.extend((s.len() as u16 + 1).to_le_bytes());
        out.extend(s.as_bytes());
        out.push(0);
    };
    string(&mut out, "WhisperSpec");
    out.extend(3u32.to_le_bytes());
    out.extend((vars.len() as u32).to_le_bytes());
    for (name, dims, dtype, bytes, claimed) in vars {
        string(&mut out, name);
        out.push(dims.len() as u8);
        for d in dims {
            out.extend(d.to_le_bytes());
        }
        out.push(*dtype);
        out.extend(claimed.unwrap_or(bytes.len() as u32).to_le_bytes());
        out.extend(bytes);
    }
    out
}

fn var() -> impl Strategy<Value = Var> {
    (
        prop_oneof![
            4 => prop::sample::select(NAMES).prop_map(str::to_owned),
            1 => "[a-z_/0-9]{0,12}",
        ],
        prop::collection::vec(
            prop_oneof![
                Just(0u32),
                Just(1),
                Just(2),
                Just(32),
                Just(80),
                Just(u32::MAX),
                any::<u32>()
            ],
            0..5,
        ),
        prop_oneof![Just(0u8), Just(3), Just(4), any::<u8>()],
        prop::collection::vec(any::<u8>(), 0..160),
        prop::option::weighted(0.1, any::<u32>()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_are_a_model_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check(&bytes, "")?;
    }

    #[test]
    fn hostile_variables_are_errors_not_panics(
        vars in prop::collection::vec(var(), 0..18),
        vocabulary in prop_oneof![Just("Ġa\nb\n<|endoftext|>\n".to_owned()), "\\PC{0,20}"],
    ) {
        check(&ct2_bytes(&vars), &vocabulary)?;
    }

    /// Every variable the converter needs, present, with random shapes: what reaches the
    /// tensor writer (row slicing, dimension products) rather than stopping at a missing
    /// variable.
    #[test]
    fn complete_models_with_hostile_shapes(
        shapes in prop::collection::vec(
            (
                prop::collection::vec(prop_oneof![Just(0u32), Just(1), Just(2), Just(80), Just(u32::MAX)], 0..4),
                prop::collection::vec(any::<u8>(), 0..64),
            ),
            NAMES.len(),
        ),
        dtype in prop_oneof![Just(0u8), Just(4)],
    ) {
        let vars: Vec<Var> = NAMES
            .iter()
            .zip(shapes)
            .map(|(name, (dims, bytes))| ((*name).to_owned(), dims, dtype, bytes, None))
            .collect();
        check(&ct2_bytes(&vars), "Ġa\n")?;
    }
}

/// The converter's inputs for a model whose every variable has `dims` (and 64 bytes).
fn all_vars(dims: &[u32]) -> Vec<Var> {
    NAMES
        .iter()
        .map(|n| ((*n).to_owned(), dims.to_vec(), 4, vec![0u8; 64], None))
        .collect()
}

fn convert(vars: &[Var]) -> std::io::Result<Vec<u8>> {
    let bytes = ct2_bytes(vars);
    let model = Ct2Model::from_reader(
        Cursor::new(&bytes),
        bytes.len() as u64,
        Tensors::Keep,
        Path::new("m.bin"),
    )
    .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut out = Vec::new();
    write_ggml(&model, "Ġa\n", WeightType::F16, &mut out).map(|()| out)
}

/// Regression: a rank-1 `decoder/embeddings/weight` indexed its second dimension.
#[test]
fn a_low_rank_embedding_is_an_error_naming_it() {
    let err = convert(&all_vars(&[4])).expect_err("rank 1");
    assert!(
        err.to_string()
            .contains("has rank 1; a Whisper model's has more than 1"),
        "{err}"
    );
}

/// Regression: a rank-0 fused projection was given a first dimension.
#[test]
fn a_rank_0_projection_is_an_error_naming_it() {
    let mut vars = all_vars(&[2, 80, 2]);
    for v in &mut vars {
        if v.0.contains("self_attention/linear_0") {
            v.1.clear();
        }
    }
    let err = convert(&vars).expect_err("rank 0");
    assert!(err.to_string().contains("rank 0 has no rows"), "{err}");
}

/// Regression: the mel band count sized the filterbank (a 4-billion-band header allocated
/// without bound).
#[test]
fn a_huge_mel_band_count_is_refused() {
    let err = convert(&all_vars(&[2, u32::MAX, 2])).expect_err("huge");
    assert!(
        err.to_string().contains("asks for 4294967295 mel bands"),
        "{err}"
    );
}
