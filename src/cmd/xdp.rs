//! Shared plumbing of the XDP subcommands: `OBJ[:PROG]` arguments, object
//! loading, captures.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uxdp_vm::Program;
use uxdp_xdp::{LoadedObject, ObjectOptions};

/// An `OBJ[:PROG]` argument.
#[derive(Clone, Debug)]
pub struct ProgArg {
    /// Object file.
    pub object: PathBuf,
    /// Program (function or section name); `None` means the object's XDP programs.
    pub program: Option<String>,
    /// A classic filter instead of an object.
    pub filter: Option<FilterRule>,
}

/// A classic (tcpdump) filter placed on a hook as an XDP program:
/// `drop-if:EXPR`, `pass-if:EXPR`, `tx-if:EXPR` or `aborted-if:EXPR`.
#[derive(Clone, Debug)]
pub struct FilterRule {
    /// Action on a match; `pass-if` drops what does not match, the others
    /// pass it on.
    pub action: u32,
    /// The libpcap expression.
    pub expr: String,
}

impl FilterRule {
    /// Parses the `ACTION-if:EXPR` form.
    pub fn parse(s: &str) -> Option<FilterRule> {
        let (head, expr) = s.split_once(':')?;
        let action = match head {
            "aborted-if" => 0,
            "drop-if" => 1,
            "pass-if" => 2,
            "tx-if" => 3,
            _ => return None,
        };
        Some(FilterRule { action, expr: expr.to_string() })
    }

    /// The return codes on a match and on no match.
    pub fn verdicts(&self) -> (u32, u32) {
        match self.action {
            2 => (2, 1),
            a => (a, 2),
        }
    }
}

impl std::str::FromStr for ProgArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(rule) = FilterRule::parse(s) {
            return Ok(ProgArg { object: PathBuf::new(), program: None, filter: Some(rule) });
        }
        // A path may itself contain ':'; only split when the whole string is
        // not an existing file.
        if !Path::new(s).exists() {
            if let Some((obj, prog)) = s.rsplit_once(':') {
                if !obj.is_empty() && !prog.is_empty() {
                    return Ok(ProgArg { object: obj.into(), program: Some(prog.into()), filter: None });
                }
            }
        }
        Ok(ProgArg { object: s.into(), program: None, filter: None })
    }
}

impl std::fmt::Display for ProgArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(r) = &self.filter {
            return write!(f, "{}:{}", ["aborted-if", "drop-if", "pass-if", "tx-if"][r.action as usize], r.expr);
        }
        match &self.program {
            Some(p) => write!(f, "{}:{p}", self.object.display()),
            None => write!(f, "{}", self.object.display()),
        }
    }
}

/// A parsed object file, ready to be loaded (fresh maps) as often as needed.
pub struct ObjectFile {
    /// Where it came from.
    pub path: PathBuf,
    /// The parsed object.
    pub object: uxdp_object::Object,
}

impl ObjectFile {
    /// Reads and parses `path`.
    pub fn open(path: &Path) -> Result<ObjectFile> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let object = uxdp_object::Object::parse(&bytes).with_context(|| format!("{}", path.display()))?;
        Ok(ObjectFile { path: path.to_path_buf(), object })
    }

    /// Creates maps and loads the programs (every call gives fresh maps).
    pub fn load(&self, opts: &LoadArgs) -> Result<LoadedObject> {
        LoadedObject::load_with(&self.object, &opts.options()?).with_context(|| format!("{}", self.path.display()))
    }

    /// The program names `arg` selects: the named one, or every XDP program.
    pub fn select(&self, program: Option<&str>) -> Result<Vec<String>> {
        let progs = &self.object.programs;
        match program {
            Some(p) => match progs.iter().find(|d| d.name == p || d.section == p) {
                Some(d) => Ok(vec![d.name.clone()]),
                None => bail!(
                    "{}: no program '{p}' (programs: {})",
                    self.path.display(),
                    progs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            },
            None => {
                let names: Vec<String> = progs.iter().filter(|d| d.runs_as_xdp()).map(|d| d.name.clone()).collect();
                if names.is_empty() {
                    bail!("{}: the object has no XDP program", self.path.display());
                }
                Ok(names)
            }
        }
    }
}

/// Options applied while an object is loaded, as its user-space loader would.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LoadArgs {
    /// Size map NAME with N entries (libbpf's `bpf_map__set_max_entries`); repeatable.
    #[arg(long = "max-entries", value_name = "NAME=N")]
    max_entries: Vec<String>,
    /// Size every map declared with `max_entries` 0 with N entries.
    #[arg(long, value_name = "N")]
    zero_max_entries: Option<u32>,
    /// Run on the interpreter instead of the x86-64 JIT.
    #[arg(long)]
    pub interpreter: bool,
}

impl LoadArgs {
    /// The loader options.
    pub fn options(&self) -> Result<ObjectOptions> {
        let mut o = ObjectOptions {
            zero_max_entries: self.zero_max_entries,
            interpreter: self.interpreter,
            ..ObjectOptions::default()
        };
        for m in &self.max_entries {
            let (name, n) = m.split_once('=').with_context(|| format!("--max-entries {m:?}: expected NAME=N"))?;
            let n = n.parse().with_context(|| format!("--max-entries {m:?}: N is not a number"))?;
            o.max_entries.push((name.to_string(), n));
        }
        Ok(o)
    }
}

/// The runnable program `name` of a loaded object, or why it cannot run.
pub fn runnable(obj: &LoadedObject, name: &str) -> Result<Arc<Program>> {
    let p = obj.program(Some(name))?;
    p.program.clone().map_err(|e| anyhow::anyhow!("program '{name}': {e}"))
}

/// Reads every packet of a pcap or pcapng capture.
pub fn read_capture(path: &Path) -> Result<Vec<Vec<u8>>> {
    let pkts = uxdp_cbpf::capture::read_capture(path)?;
    Ok(pkts.into_iter().map(|p| p.data).collect())
}

/// Formats bytes as lowercase hex, space separated.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}
