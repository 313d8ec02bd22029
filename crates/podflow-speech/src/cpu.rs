//! What this CPU is and which of its instruction sets matter to the speech engines, read from
//! `/proc/cpuinfo`: for `podflow doctor`, the logs and the transcription bench, so every
//! figure says which CPU it came from. Nothing here selects code: CTranslate2 and
//! whisper.cpp choose their kernels themselves at run time.

/// Instruction sets that change which matrix kernels run (x86-64, then arm64 names).
const FLAGS_THAT_MATTER: [&str; 16] = [
    "sse4_1",
    "avx",
    "f16c",
    "fma",
    "avx2",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "amx_int8",
    "asimd",
    "asimddp",
    "i8mm",
    "bf16",
    "sve",
];

/// The CPU as a bug report or a benchmark table needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSummary {
    /// `model name` (x86) or the implementer/part pair (arm64), else "unknown".
    pub model: String,
    pub arch: &'static str,
    /// Logical CPUs listed.
    pub cores: usize,
    /// The instruction sets in [`FLAGS_THAT_MATTER`] this CPU has, in that order.
    pub flags: Vec<&'static str>,
}

impl CpuSummary {
    /// This machine's CPU (an empty summary where `/proc/cpuinfo` cannot be read).
    pub fn detect() -> Self {
        let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Self::parse(&text, std::env::consts::ARCH)
    }

    /// Reads the text of `/proc/cpuinfo` (x86-64 or arm64 layout).
    pub fn parse(cpuinfo: &str, arch: &'static str) -> Self {
        let field = |name: &str| {
            cpuinfo.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_owned())
            })
        };
        let cores = cpuinfo
            .lines()
            .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
            .count();
        let listed = field("flags")
            .or_else(|| field("Features"))
            .unwrap_or_default();
        let present: Vec<&str> = listed.split_whitespace().collect();
        let flags = FLAGS_THAT_MATTER
            .into_iter()
            .filter(|f| present.contains(f))
            .collect();
        let model = field("model name")
            .or_else(|| {
                let implementer = field("CPU implementer")?;
                let part = field("CPU part").unwrap_or_default();
                Some(format!("arm implementer {implementer} part {part}"))
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Self {
            model,
            arch,
            cores,
            flags,
        }
    }

    /// One line: `AMD EPYC (x86_64, 2 CPUs): avx f16c fma avx2`.
    pub fn line(&self) -> String {
        let flags = if self.flags.is_empty() {
            "none of the vector extensions podflow looks for".to_owned()
        } else {
            self.flags.join(" ")
        };
        format!(
            "{} ({}, {} CPUs): {flags}",
            self.model, self.arch, self.cores
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_x86_cpu_without_avx2_lists_what_it_has() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_1 avx fma f16c hypervisor\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_1 avx fma f16c\n";
        let cpu = CpuSummary::parse(text, "x86_64");
        assert_eq!(cpu.model, "AMD EPYC");
        assert_eq!(cpu.cores, 2);
        assert_eq!(cpu.flags, vec!["sse4_1", "avx", "f16c", "fma"]);
        assert_eq!(cpu.line(), "AMD EPYC (x86_64, 2 CPUs): sse4_1 avx f16c fma");
    }

    #[test]
    fn an_avx512_xeon_lists_its_int8_extensions() {
        let text = "processor : 0\nmodel name : Intel(R) Xeon(R) Platinum 8488C\nflags : avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 amx_int8\n";
        let cpu = CpuSummary::parse(text, "x86_64");
        assert!(cpu.flags.contains(&"avx512_vnni") && cpu.flags.contains(&"amx_int8"));
        assert!(!cpu.flags.contains(&"asimd"));
    }

    #[test]
    fn an_arm64_cpu_is_named_by_implementer_and_part() {
        let text = "processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes asimddp sve i8mm bf16\nCPU implementer\t: 0x41\nCPU part\t: 0xd40\n";
        let cpu = CpuSummary::parse(text, "aarch64");
        assert_eq!(cpu.model, "arm implementer 0x41 part 0xd40");
        assert_eq!(cpu.flags, vec!["asimd", "asimddp", "i8mm", "bf16", "sve"]);
    }

    #[test]
    fn nothing_readable_is_unknown_not_a_panic() {
        let cpu = CpuSummary::parse("", "x86_64");
        assert_eq!(cpu.model, "unknown");
        assert_eq!(cpu.cores, 0);
        assert!(cpu.line().contains("none of the vector extensions"));
    }
}
