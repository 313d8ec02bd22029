//! CTranslate2's `model.bin` (spec revision 6): `u32 version`, a `u16`-prefixed spec name,
//! `u32 revision`, `u32` variable count, then per variable a `u16`-prefixed name, `u8 rank`,
//! `u32` dims, `u8` dtype, `u32` byte count and the bytes. Read here for the model's shape
//! (header only, weights seeked over), its hash, and — for the ggml conversion — its tensors.

use std::{
    collections::HashMap,
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use super::ModelError;

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
    let n_mels = model.n_mels().map_err(|e| ModelError::Invalid {
        path: model_bin.clone(),
        message: e.to_string(),
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

pub(super) fn sha256_file(path: &Path) -> std::io::Result<String> {
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
pub(super) struct Ct2Var {
    pub(super) dims: Vec<usize>,
    pub(super) dtype: u8,
    pub(super) bytes: Vec<u8>,
}

/// Tokens of the English-only models; multilingual ones have more.
const ENGLISH_VOCAB: usize = 51864;

/// The most mel bands a model may ask for (Whisper's take 80, large-v3 128): the filterbank
/// and every spectrogram are sized by it, so a corrupt header must not set it.
pub const MAX_MELS: usize = 256;

pub(super) const DT_F32: u8 = 0;
const DT_I8: u8 = 1;
const DT_I16: u8 = 2;
const DT_I32: u8 = 3;
pub(super) const DT_F16: u8 = 4;

/// A parsed CTranslate2 `model.bin` (spec revision 6 layout).
pub(super) struct Ct2Model {
    vars: HashMap<String, Ct2Var>,
}

impl Ct2Model {
    /// Reads `model.bin`; with `Tensors::Skip` only names and shapes are kept and the
    /// weights are seeked over (naming the model must not read 75 MB or more).
    pub(super) fn read(path: &Path, tensors: Tensors) -> Result<Self, ModelError> {
        let io = |source| ModelError::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        Self::from_reader(std::io::BufReader::new(file), len, tensors, path)
    }

    /// Parses a `model.bin` of `len` bytes from `file` (`path` names it in errors). Any
    /// byte string gives a model or an error, never a panic, and nothing is allocated
    /// beyond what the bytes hold.
    pub(super) fn from_reader(
        file: impl Read + Seek,
        len: u64,
        tensors: Tensors,
        path: &Path,
    ) -> Result<Self, ModelError> {
        let mut r = Reader { file, at: 0, len };
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

    pub(super) fn var(&self, name: &str) -> std::io::Result<&Ct2Var> {
        self.vars.get(name).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("missing variable {name}"),
            )
        })
    }

    /// A variable's dimension `i`, or an error naming the variable and the rank it has
    /// (a low-rank tensor in a corrupt file).
    pub(super) fn dim(&self, name: &str, i: usize) -> std::io::Result<usize> {
        let var = self.var(name)?;
        var.dims.get(i).copied().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{name} has rank {}; a Whisper model's has more than {i}",
                    var.dims.len()
                ),
            )
        })
    }

    /// The mel bands the encoder takes: `encoder/conv1/weight`'s second dimension, within
    /// 1..=[`MAX_MELS`].
    pub(super) fn n_mels(&self) -> std::io::Result<usize> {
        let n = self.dim("encoder/conv1/weight", 1).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not a Whisper model: {e}"),
            )
        })?;
        if (1..=MAX_MELS).contains(&n) {
            Ok(n)
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "encoder/conv1/weight asks for {n} mel bands; Whisper's take 1 to {MAX_MELS}"
                ),
            ))
        }
    }

    pub(super) fn scalar(&self, name: &str) -> Option<i64> {
        let v = self.vars.get(name)?;
        Some(match v.dtype {
            DT_I8 => i64::from(*v.bytes.first()? as i8),
            DT_I16 => i64::from(i16::from_le_bytes([*v.bytes.first()?, *v.bytes.get(1)?])),
            DT_I32 => i64::from(i32::from_le_bytes(v.bytes.get(..4)?.try_into().ok()?)),
            _ => return None,
        })
    }

    pub(super) fn layers(&self, side: &str) -> usize {
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

    pub(super) fn model_name(&self) -> String {
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
pub(super) enum Tensors {
    Keep,
    Skip,
}

/// Little-endian fields of `model.bin`, read in order; `len` bounds every length the file
/// claims, so a corrupt one ends in UnexpectedEof instead of a huge allocation.
struct Reader<R> {
    file: R,
    at: u64,
    len: u64,
}

impl<R: Read + Seek> Reader<R> {
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
        self.file.seek(SeekFrom::Current(n)).map(|_| ())
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
