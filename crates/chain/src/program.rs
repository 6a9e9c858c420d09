//! Programs ready to be attached to a hook.

use crate::ChainError;
use std::sync::Arc;
use uxdp_object::RunConfig;
use uxdp_vm::Program;
use uxdp_xdp::{LoadedObject, MapTable, ProgTable};

/// A loaded XDP program plus what it runs against (its object's maps and
/// tail-call targets) and its libxdp run configuration.
///
/// One `ChainProgram` may be attached several times (to one hook or many);
/// every attachment is an independent entry with its own id, priority,
/// actions and statistics, sharing the program and its maps.
pub struct ChainProgram {
    name: String,
    label: String,
    program: Arc<Program>,
    maps: Arc<MapTable>,
    prog_table: Arc<ProgTable>,
    run_config: RunConfig,
    has_run_config: bool,
}

impl std::fmt::Debug for ChainProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainProgram")
            .field("name", &self.name)
            .field("label", &self.label)
            .field("run_config", &self.run_config)
            .field("has_run_config", &self.has_run_config)
            .finish_non_exhaustive()
    }
}

impl ChainProgram {
    /// The XDP program `name` of `obj` (the first XDP program when `None`),
    /// with its `XDP_RUN_CONFIG` (libxdp's defaults, priority 50 and
    /// `{XDP_PASS}`, when the object has none for it). `label` names where
    /// it came from (e.g. the object's path) in status output.
    ///
    /// Errors: no such program, a program that is not XDP, one that failed
    /// to load, or one a test run cannot start (`xdp/devmap`, `xdp/cpumap`
    /// second-stage programs, which only run after a redirect).
    pub fn from_object(
        obj: &LoadedObject,
        name: Option<&str>,
        label: impl Into<String>,
    ) -> Result<Arc<ChainProgram>, ChainError> {
        let label = label.into();
        let p = obj.program(name).map_err(|e| ChainError::Program { label: label.clone(), reason: e.to_string() })?;
        let fail = |reason: String| ChainError::Program { label: label.clone(), reason };
        if !p.is_xdp {
            return Err(fail(format!("program '{}' (section '{}') is not an XDP program", p.name, p.section)));
        }
        if p.test_run_refusal().is_some() {
            return Err(fail(format!(
                "program '{}' (section '{}') is a second-stage devmap/cpumap program: it cannot run on a hook",
                p.name, p.section
            )));
        }
        let program = p.program.as_ref().map_err(|e| fail(format!("program '{}' did not load: {e}", p.name)))?;
        Ok(Arc::new(ChainProgram {
            name: p.name.clone(),
            label,
            program: program.clone(),
            maps: obj.maps.clone(),
            prog_table: obj.prog_table.clone(),
            run_config: p.def.effective_run_config(),
            has_run_config: p.def.run_config.is_some(),
        }))
    }

    /// Every XDP program of `obj` that can run on a hook, in object order
    /// (what `xdp-loader load` attaches from a file without `--prog-name`
    /// is the first; this is for callers that want them all).
    pub fn all_from_object(obj: &LoadedObject, label: &str) -> Result<Vec<Arc<ChainProgram>>, ChainError> {
        obj.xdp_programs()
            .filter(|p| p.test_run_refusal().is_none())
            .map(|p| ChainProgram::from_object(obj, Some(&p.name), label))
            .collect()
    }

    /// A program assembled by hand (tests, generated code): `run_config`
    /// gives its defaults as `XDP_RUN_CONFIG` would.
    pub fn new(
        name: impl Into<String>,
        program: Arc<Program>,
        maps: Arc<MapTable>,
        prog_table: Arc<ProgTable>,
        run_config: RunConfig,
    ) -> Arc<ChainProgram> {
        let name = name.into();
        Arc::new(ChainProgram {
            label: name.clone(),
            name,
            program,
            maps,
            prog_table,
            run_config,
            has_run_config: true,
        })
    }

    /// Function name (libxdp sorts equal priorities by it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where it came from (object path or a caller's label).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The loaded code.
    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }

    /// Its object's maps.
    pub fn maps(&self) -> &Arc<MapTable> {
        &self.maps
    }

    /// Its object's tail-call targets.
    pub fn prog_table(&self) -> &Arc<ProgTable> {
        &self.prog_table
    }

    /// Default priority and chain-call actions (`XDP_RUN_CONFIG` or libxdp's
    /// defaults).
    pub fn run_config(&self) -> RunConfig {
        self.run_config
    }

    /// Whether the object carried an `XDP_RUN_CONFIG` for this program.
    pub fn has_run_config(&self) -> bool {
        self.has_run_config
    }
}
