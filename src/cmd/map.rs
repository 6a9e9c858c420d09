//! `uxdp map dump`: map contents of an object (initial state), and the
//! printer the run commands share for `--dump-maps`.

use super::xdp::{hex, LoadArgs, ObjectFile};
use anyhow::{bail, Result};
use clap::{Args as ClapArgs, Subcommand};
use std::path::PathBuf;
use uxdp_xdp::LoadedObject;

/// `uxdp map ...`.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Print the maps of an object as loaded (global data, initialised arrays, prog arrays).
    Dump(DumpArgs),
}

/// `uxdp map dump`.
#[derive(ClapArgs, Debug)]
pub struct DumpArgs {
    /// The object file.
    object: PathBuf,
    /// Only this map.
    #[arg(long)]
    map: Option<String>,
    #[command(flatten)]
    load: LoadArgs,
    /// JSON output (`[{"name", "type", "key_size", "value_size", "max_entries", "entries": [{"key", "value"}]}]`,
    /// keys and values as arrays of hex strings like `bpftool -j map dump`).
    #[arg(long)]
    json: bool,
}

/// Output format of map dumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpFormat {
    /// `key: .. value: ..` lines, like `bpftool map dump`.
    Text,
    /// JSON.
    Json,
}

/// Runs `uxdp map ...`.
pub fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Dump(a) => {
            let obj = ObjectFile::open(&a.object)?.load(&a.load)?;
            print_maps(&obj, a.map.as_deref(), if a.json { DumpFormat::Json } else { DumpFormat::Text })
        }
    }
}

/// Prints the maps of `obj` (or only `only`).
pub fn print_maps(obj: &LoadedObject, only: Option<&str>, format: DumpFormat) -> Result<()> {
    let table = &obj.maps;
    let indices: Vec<usize> = match only {
        Some(n) => match table.names.iter().position(|m| m == n) {
            Some(i) => vec![i],
            None => bail!("no map '{n}' (maps: {})", table.names.join(", ")),
        },
        None => (0..table.maps.len()).collect(),
    };
    let mut json = Vec::new();
    for i in indices {
        let map = &table.maps[i];
        let spec = map.spec();
        let type_name = map.map_type().map_or_else(|| format!("type {}", spec.map_type), |t| format!("{t:?}"));
        // Some types cannot be read from user space (xskmap, ...): say so.
        let (entries, note) = match table.dump(i) {
            Ok(e) => (e, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        match format {
            DumpFormat::Text => {
                println!(
                    "map {} {} key {}B value {}B max_entries {}: {} entries",
                    table.names[i],
                    type_name,
                    spec.key_size,
                    spec.value_size,
                    spec.max_entries,
                    entries.len()
                );
                if let Some(n) = &note {
                    println!("  (not readable: {n})");
                }
                for (k, v) in &entries {
                    println!("key: {}  value: {}", hex(k), hex(v));
                }
            }
            DumpFormat::Json => {
                let hexes = |b: &[u8]| b.iter().map(|x| format!("0x{x:02x}")).collect::<Vec<_>>();
                json.push(serde_json::json!({
                    "name": table.names[i],
                    "type": type_name,
                    "key_size": spec.key_size,
                    "value_size": spec.value_size,
                    "max_entries": spec.max_entries,
                    "error": note,
                    "entries": entries.iter().map(|(k, v)| serde_json::json!({"key": hexes(k), "value": hexes(v)})).collect::<Vec<_>>(),
                }));
            }
        }
    }
    if format == DumpFormat::Json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(())
}
