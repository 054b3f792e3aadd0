//! Test fixture: a plugin that panics in the function named by its options (`at=create`,
//! `at=prepare`, `at=compute` (the default) or `at=never`). The panic must come back to the host
//! as an error status carrying the panic message; the host keeps working. With `at=never` it
//! gives every candidate the cost 0.

use deepsim_plugin_api::rust::{Block, Level, Plugin};
use std::ffi::CStr;

struct Panics {
    at: String,
}

impl Plugin for Panics {
    const NAME: &'static CStr = c"fixture-panic";

    fn create(options: &str) -> Result<Self, String> {
        // The plugin has its own copy of std, hence its own panic hook: keep the test log quiet
        // (the message still reaches the host through last_error).
        static QUIET: std::sync::Once = std::sync::Once::new();
        QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
        let at = options.strip_prefix("at=").unwrap_or("compute").to_string();
        if at == "create" {
            panic!("fixture-panic: panic in create, as asked");
        }
        Ok(Panics { at })
    }

    fn prepare(&mut self, _level: &Level<'_>) -> Result<(), String> {
        if self.at == "prepare" {
            panic!("fixture-panic: panic in prepare, as asked");
        }
        Ok(())
    }

    fn compute(&mut self, block: &mut Block<'_>) -> Result<(), String> {
        if self.at == "compute" {
            let rows = [0u8; 1];
            // An index out of bounds: a panic the plugin's author did not write.
            let _ = rows[block.y0() + 1];
        }
        for px in block.pixels() {
            px.costs.fill(0);
        }
        Ok(())
    }
}

deepsim_plugin_api::export_plugin!(Panics);
