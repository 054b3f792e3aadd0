//! Test fixture: a plugin that fails, with a message, in the function named by its options
//! (`at=create`, `at=prepare` or `at=compute`, the default). The message must reach the user.

use deepsim_plugin_api::rust::{Block, Level, Plugin};
use std::ffi::CStr;

struct Fails {
    at: String,
}

impl Plugin for Fails {
    const NAME: &'static CStr = c"fixture-error";

    fn create(options: &str) -> Result<Self, String> {
        let at = options.strip_prefix("at=").unwrap_or("compute").to_string();
        if at == "create" {
            return Err(format!("fixture-error: create refuses the options '{options}' on purpose"));
        }
        Ok(Fails { at })
    }

    fn prepare(&mut self, level: &Level<'_>) -> Result<(), String> {
        if self.at == "prepare" {
            return Err(format!("fixture-error: prepare refuses the {}×{} pair on purpose", level.left.width(), level.left.height()));
        }
        Ok(())
    }

    fn compute(&mut self, block: &mut Block<'_>) -> Result<(), String> {
        if self.at == "compute" {
            return Err(format!("fixture-error: compute refuses rows {}..{} on purpose", block.y0(), block.y0() + block.rows()));
        }
        Ok(())
    }
}

deepsim_plugin_api::export_plugin!(Fails);
