//! Converting a CTranslate2 Whisper model into whisper.cpp's ggml file, once per model and
//! weight type, cached in the data directory.
//!
//! Long because of data: the tensor name tables (which CTranslate2 variable becomes which
//! ggml tensor) are a third of it.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use super::{
    ModelError,
    ct2_file::{Ct2Model, Ct2Var, DT_F16, DT_F32, Tensors, sha256_file},
    unicode_to_byte,
};
use crate::mel::mel_filters;

/// How the converted weight matrices are stored. Conv kernels stay f16 and biases, norms
/// and positional tables f32 either way (what whisper.cpp expects of each file type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightType {
    F16,
    /// ggml's 8-bit blocks: 32 weights share one f16 scale.
    Q8_0,
}

impl WeightType {
    /// `PODFLOW_WHISPER_WEIGHTS` (`f16` or `q8_0`), default f16; anything else is an error
    /// naming the accepted values.
    pub fn from_env() -> Result<Self, ModelError> {
        match std::env::var("PODFLOW_WHISPER_WEIGHTS").ok().as_deref() {
            None | Some("") | Some("f16") => Ok(Self::F16),
            Some("q8_0") => Ok(Self::Q8_0),
            Some(other) => Err(ModelError::Setting(format!(
                "PODFLOW_WHISPER_WEIGHTS={other}: use f16 or q8_0"
            ))),
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Self::F16 => "f16",
            Self::Q8_0 => "q8_0",
        }
    }

    /// The header's file type: ggml's `GGML_FTYPE_*`, plus the quantisation format version
    /// (2) × 1000 for quantised files.
    fn ftype(self) -> i32 {
        match self {
            Self::F16 => 1,
            Self::Q8_0 => 2 * 1000 + 7,
        }
    }
}

/// A model ready for whisper.cpp.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    /// The ggml file to load.
    pub ggml_path: PathBuf,
    /// A short name (`tiny.en`).
    pub name: String,
    /// SHA-256 of the source weights, and the weight type it was converted to: a different
    /// model is different work.
    pub fingerprint: String,
}

/// Prepares `source` (a CTranslate2 directory or a ggml file) for whisper.cpp, converting
/// into `cache_dir` when needed. Conversion happens once per distinct model.
pub fn prepare(
    source: &Path,
    cache_dir: &Path,
    weights: WeightType,
) -> Result<ResolvedModel, ModelError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ModelError::Io { path, source }
    };
    if source.is_file() {
        let fingerprint = sha256_file(source).map_err(io(source))?;
        let name = source
            .file_stem()
            .map(|s| s.to_string_lossy().trim_start_matches("ggml-").to_owned())
            .unwrap_or_else(|| "whisper".into());
        return Ok(ResolvedModel {
            ggml_path: source.to_owned(),
            name,
            fingerprint,
        });
    }
    let model_bin = source.join("model.bin");
    if !model_bin.is_file() {
        return Err(ModelError::Invalid {
            path: source.to_owned(),
            message: "is neither a ggml file nor a CTranslate2 directory with model.bin".into(),
        });
    }
    let fingerprint = sha256_file(&model_bin).map_err(io(&model_bin))?;
    let target = cache_dir.join(format!(
        "whisper-{}-{}.ggml.bin",
        &fingerprint[..16],
        weights.suffix()
    ));
    let name = Ct2Model::read(&model_bin, Tensors::Skip)?.model_name();
    if !target.is_file() {
        let ct2 = Ct2Model::read(&model_bin, Tensors::Keep)?;
        std::fs::create_dir_all(cache_dir).map_err(io(cache_dir))?;
        let vocab = std::fs::read_to_string(source.join("vocabulary.txt"))
            .map_err(io(&source.join("vocabulary.txt")))?;
        // Unique per conversion, so engines converting at once (tests, two workers) never
        // write into each other's file; the rename makes the finished one appear whole.
        static CONVERSIONS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = CONVERSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = target.with_extension(format!("tmp-{}-{n}", std::process::id()));
        let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        let mut out = std::io::BufWriter::new(file);
        write_ggml(&ct2, &vocab, weights, &mut out)
            .and_then(|()| out.flush())
            .map_err(io(&tmp))?;
        drop(out);
        std::fs::rename(&tmp, &target).map_err(io(&target))?;
        tracing::info!(model = %name, path = %target.display(), "converted Whisper model for whisper.cpp");
    }
    Ok(ResolvedModel {
        ggml_path: target,
        name,
        fingerprint: match weights {
            WeightType::F16 => fingerprint,
            other => format!("{fingerprint}-{}", other.suffix()),
        },
    })
}

/// The ggml tensor element types whisper.cpp accepts in this file.
enum Ggml {
    F32,
    F16,
    Q8_0,
}

/// ggml's `block_q8_0`: an f16 scale, then 32 signed bytes. Written here (the quantiser is
/// C inside whisper.cpp, not reachable without unsafe code): scale = max |x| / 127, each
/// weight rounded to the nearest multiple, exactly as ggml's reference quantiser does.
fn q8_0_bytes(values: &[f32]) -> std::io::Result<Vec<u8>> {
    if !values.len().is_multiple_of(32) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "q8_0 needs rows of a multiple of 32 weights",
        ));
    }
    let mut out = Vec::with_capacity(values.len() / 32 * 34);
    for block in values.chunks_exact(32) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|v| ((v * id).round() as i8) as u8));
    }
    Ok(out)
}

/// A tensor to write: ggml name, row-major (PyTorch) shape, element type, and which rows
/// of the source variable to take (for the fused projections).
struct Tensor<'a> {
    name: String,
    source: &'a Ct2Var,
    rows: Option<(usize, usize)>,
    out: Ggml,
    /// Write `[n]` as `[n, 1]` (whisper.cpp wants conv biases 2-D).
    as_column: bool,
}

fn f16_bytes_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect()
}

fn f32_to_f16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect()
}

fn elements(var: &Ct2Var) -> std::io::Result<Vec<f32>> {
    match var.dtype {
        DT_F16 => Ok(f16_bytes_to_f32(&var.bytes)),
        DT_F32 => Ok(var
            .bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()),
        other => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "unsupported weight type {other} (quantized CTranslate2 models are not supported; use a float16 one)"
            ),
        )),
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// A size as the `i32` ggml's header stores, or an error naming it (a corrupt dimension).
fn header_i32(what: &str, n: usize) -> std::io::Result<i32> {
    i32::try_from(n).map_err(|_| invalid(format!("{what} is {n}, more than ggml can store")))
}

fn write_tensor(out: &mut impl Write, t: &Tensor<'_>) -> std::io::Result<()> {
    let all = elements(t.source)?;
    let mut shape = t.source.dims.clone();
    let values: Vec<f32> = match t.rows {
        Some((from, to)) => {
            // Sizes come from the file: a corrupt one is an error, never an overflow.
            let too_few = || invalid(format!("{}: too few rows", t.name));
            let row = shape
                .iter()
                .skip(1)
                .try_fold(1usize, |acc, d| acc.checked_mul(*d))
                .ok_or_else(too_few)?;
            let first = shape
                .first_mut()
                .ok_or_else(|| invalid(format!("{}: a tensor of rank 0 has no rows", t.name)))?;
            *first = to.checked_sub(from).ok_or_else(too_few)?;
            let (start, end) = from
                .checked_mul(row)
                .zip(to.checked_mul(row))
                .ok_or_else(too_few)?;
            all.get(start..end).ok_or_else(too_few)?.to_vec()
        }
        None => all,
    };
    if t.as_column {
        shape.push(1);
    }
    let (ftype, bytes): (i32, Vec<u8>) = match t.out {
        Ggml::F32 => (0, values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        Ggml::F16 => (1, f32_to_f16_bytes(&values)),
        Ggml::Q8_0 => (8, q8_0_bytes(&values)?),
    };
    out.write_all(&header_i32("a rank", shape.len())?.to_le_bytes())?;
    out.write_all(&header_i32("a name's length", t.name.len())?.to_le_bytes())?;
    out.write_all(&ftype.to_le_bytes())?;
    // ggml lists dimensions innermost first.
    for d in shape.iter().rev() {
        out.write_all(&header_i32(&format!("a dimension of {}", t.name), *d)?.to_le_bytes())?;
    }
    out.write_all(t.name.as_bytes())?;
    out.write_all(&bytes)
}

/// One tensor of a transformer layer: ggml name, CTranslate2 name, which rows of the source
/// (in units of the model width: CTranslate2 fuses q/k/v and k/v into one matrix), f16?
type LayerTensor = (&'static str, &'static str, Option<(usize, usize)>, bool);

/// Self-attention and MLP: the same in encoder and decoder layers. OpenAI's key projection
/// has no bias (CTranslate2 stores zeros), so none is written.
const LAYER: &[LayerTensor] = &[
    (
        "attn.query.weight",
        "self_attention/linear_0/weight",
        Some((0, 1)),
        true,
    ),
    (
        "attn.query.bias",
        "self_attention/linear_0/bias",
        Some((0, 1)),
        false,
    ),
    (
        "attn.key.weight",
        "self_attention/linear_0/weight",
        Some((1, 2)),
        true,
    ),
    (
        "attn.value.weight",
        "self_attention/linear_0/weight",
        Some((2, 3)),
        true,
    ),
    (
        "attn.value.bias",
        "self_attention/linear_0/bias",
        Some((2, 3)),
        false,
    ),
    (
        "attn.out.weight",
        "self_attention/linear_1/weight",
        None,
        true,
    ),
    ("attn.out.bias", "self_attention/linear_1/bias", None, false),
    (
        "attn_ln.weight",
        "self_attention/layer_norm/gamma",
        None,
        false,
    ),
    (
        "attn_ln.bias",
        "self_attention/layer_norm/beta",
        None,
        false,
    ),
    ("mlp.0.weight", "ffn/linear_0/weight", None, true),
    ("mlp.0.bias", "ffn/linear_0/bias", None, false),
    ("mlp.2.weight", "ffn/linear_1/weight", None, true),
    ("mlp.2.bias", "ffn/linear_1/bias", None, false),
    ("mlp_ln.weight", "ffn/layer_norm/gamma", None, false),
    ("mlp_ln.bias", "ffn/layer_norm/beta", None, false),
];

/// Cross-attention, decoder layers only.
const CROSS_ATTENTION: &[LayerTensor] = &[
    (
        "cross_attn.query.weight",
        "attention/linear_0/weight",
        None,
        true,
    ),
    (
        "cross_attn.query.bias",
        "attention/linear_0/bias",
        None,
        false,
    ),
    (
        "cross_attn.key.weight",
        "attention/linear_1/weight",
        Some((0, 1)),
        true,
    ),
    (
        "cross_attn.value.weight",
        "attention/linear_1/weight",
        Some((1, 2)),
        true,
    ),
    (
        "cross_attn.value.bias",
        "attention/linear_1/bias",
        Some((1, 2)),
        false,
    ),
    (
        "cross_attn.out.weight",
        "attention/linear_2/weight",
        None,
        true,
    ),
    (
        "cross_attn.out.bias",
        "attention/linear_2/bias",
        None,
        false,
    ),
    (
        "cross_attn_ln.weight",
        "attention/layer_norm/gamma",
        None,
        false,
    ),
    (
        "cross_attn_ln.bias",
        "attention/layer_norm/beta",
        None,
        false,
    ),
];

pub(super) fn write_ggml(
    model: &Ct2Model,
    vocabulary: &str,
    weights: WeightType,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let bad = invalid;
    // Low-rank tensors in a corrupt file are errors naming them (`dim`), not panics.
    let n_vocab = model.dim("decoder/embeddings/weight", 0)?;
    let n_text_state = model.dim("decoder/embeddings/weight", 1)?;
    let n_audio_ctx = model.dim("encoder/position_encodings/encodings", 0)?;
    let n_audio_state = model.dim("encoder/position_encodings/encodings", 1)?;
    let n_text_ctx = model.dim("decoder/position_encodings/encodings", 0)?;
    let n_mels = model.n_mels()?;
    let n_audio_layer = model.layers("encoder");
    let n_text_layer = model.layers("decoder");
    // Whisper's head size is always 64.
    let head = |side: &str, state: usize| {
        model
            .scalar(&format!("{side}/num_heads"))
            .and_then(|n| i32::try_from(n).ok())
            .map_or_else(|| header_i32("a head count", state / 64), Ok)
    };
    let n_audio_head = head("encoder", n_audio_state)?;
    let n_text_head = head("decoder", n_text_state)?;

    for v in [
        0x6767_6d6c_i32,
        header_i32("the vocabulary size", n_vocab)?,
        header_i32("the audio context", n_audio_ctx)?,
        header_i32("the audio state", n_audio_state)?,
        n_audio_head,
        header_i32("the audio layers", n_audio_layer)?,
        header_i32("the text context", n_text_ctx)?,
        header_i32("the text state", n_text_state)?,
        n_text_head,
        header_i32("the text layers", n_text_layer)?,
        header_i32("the mel bands", n_mels)?,
        weights.ftype(),
    ] {
        out.write_all(&v.to_le_bytes())?;
    }
    out.write_all(&header_i32("the mel bands", n_mels)?.to_le_bytes())?;
    out.write_all(&201i32.to_le_bytes())?;
    for w in mel_filters(n_mels) {
        out.write_all(&w.to_le_bytes())?;
    }

    // The text tokens only: whisper.cpp adds <|endoftext|> and the special tokens itself.
    let table = unicode_to_byte();
    let tokens: Vec<&str> = vocabulary
        .lines()
        .take_while(|t| *t != "<|endoftext|>")
        .collect();
    out.write_all(&header_i32("the vocabulary", tokens.len())?.to_le_bytes())?;
    for token in tokens {
        let bytes: Vec<u8> = token
            .chars()
            .map(|c| {
                table
                    .get(&c)
                    .copied()
                    .ok_or_else(|| bad(format!("vocabulary: unexpected character {c:?}")))
            })
            .collect::<Result<_, _>>()?;
        out.write_all(&header_i32("a token's length", bytes.len())?.to_le_bytes())?;
        out.write_all(&bytes)?;
    }

    let mut tensors: Vec<Tensor<'_>> = Vec::new();
    let mut add = |name: String,
                   src: String,
                   rows: Option<(usize, usize)>,
                   f16: bool,
                   as_column: bool|
     -> std::io::Result<()> {
        // Weight matrices are f16 or q8_0, except the conv kernels (always f16); biases,
        // norms and positional tables f32 (what whisper.cpp expects).
        let out = match (f16, weights) {
            (false, _) => Ggml::F32,
            (true, WeightType::Q8_0) if !name.contains(".conv") => Ggml::Q8_0,
            (true, _) => Ggml::F16,
        };
        tensors.push(Tensor {
            name,
            source: model.var(&src)?,
            rows,
            out,
            as_column,
        });
        Ok(())
    };
    for (name, src, f16, as_column) in [
        ("encoder.conv1.weight", "encoder/conv1/weight", true, false),
        ("encoder.conv1.bias", "encoder/conv1/bias", false, true),
        ("encoder.conv2.weight", "encoder/conv2/weight", true, false),
        ("encoder.conv2.bias", "encoder/conv2/bias", false, true),
        (
            "encoder.positional_embedding",
            "encoder/position_encodings/encodings",
            false,
            false,
        ),
        (
            "encoder.ln_post.weight",
            "encoder/layer_norm/gamma",
            false,
            false,
        ),
        (
            "encoder.ln_post.bias",
            "encoder/layer_norm/beta",
            false,
            false,
        ),
        (
            "decoder.token_embedding.weight",
            "decoder/embeddings/weight",
            true,
            false,
        ),
        (
            "decoder.positional_embedding",
            "decoder/position_encodings/encodings",
            false,
            false,
        ),
        (
            "decoder.ln.weight",
            "decoder/layer_norm/gamma",
            false,
            false,
        ),
        ("decoder.ln.bias", "decoder/layer_norm/beta", false, false),
    ] {
        add(name.into(), src.into(), None, f16, as_column)?;
    }
    let layers = [
        ("encoder", "encoder", n_audio_layer, n_audio_state, false),
        ("decoder", "decoder", n_text_layer, n_text_state, true),
    ];
    for (src_side, dst_side, count, state, cross) in layers {
        for i in 0..count {
            let mappings = LAYER
                .iter()
                .chain(if cross { CROSS_ATTENTION } else { &[] });
            for (dst, src, rows, f16) in mappings {
                let rows = match rows {
                    Some((from, to)) => Some(
                        from.checked_mul(state)
                            .zip(to.checked_mul(state))
                            .ok_or_else(|| bad(format!("{src_side} state {state} is too large")))?,
                    ),
                    None => None,
                };
                add(
                    format!("{dst_side}.blocks.{i}.{dst}"),
                    format!("{src_side}/layer_{i}/{src}"),
                    rows,
                    *f16,
                    false,
                )?;
            }
        }
    }

    for tensor in &tensors {
        write_tensor(out, tensor)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_blocks_hold_a_scale_and_rounded_weights() {
        let mut values: Vec<f32> = (0..32).map(|i| i as f32 / 31.0 - 0.5).collect();
        values[7] = -1.27;
        values.extend([0.0f32; 32]);
        let bytes = q8_0_bytes(&values).expect("two blocks");
        assert_eq!(bytes.len(), 2 * 34);
        let d = half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32();
        assert!((d - 0.01).abs() < 1e-5, "{d}");
        assert_eq!(bytes[2 + 7] as i8, -127);
        // Every weight comes back within half a step of the scale.
        for (i, v) in values[..32].iter().enumerate() {
            let back = f32::from(bytes[2 + i] as i8) * d;
            assert!((back - v).abs() <= d / 2.0 + 1e-4, "{i}: {v} -> {back}");
        }
        // An all-zero block: zero scale, zero weights.
        assert!(bytes[34..].iter().all(|b| *b == 0));
        assert!(q8_0_bytes(&[1.0; 31]).is_err());
    }

    #[test]
    fn rejects_files_that_are_not_ct2_models() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("model.bin"), b"not a model").expect("write");
        let err =
            prepare(dir.path(), &dir.path().join("cache"), WeightType::F16).expect_err("must fail");
        assert!(
            err.to_string()
                .contains("not a CTranslate2 Whisper model.bin"),
            "{err}"
        );
    }
}
