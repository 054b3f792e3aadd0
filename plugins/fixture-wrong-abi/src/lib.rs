//! Test fixture: a plugin built against ABI version 999, which no host supports. Loading it must
//! fail with an error naming both versions; nothing of it is ever called.

use deepsim_plugin_api::rust::{Block, Level, Plugin};
use std::ffi::CStr;

struct WrongAbi;

impl Plugin for WrongAbi {
    const NAME: &'static CStr = c"fixture-wrong-abi";

    fn create(_options: &str) -> Result<Self, String> {
        Ok(WrongAbi)
    }

    fn prepare(&mut self, _level: &Level<'_>) -> Result<(), String> {
        Ok(())
    }

    fn compute(&mut self, _block: &mut Block<'_>) -> Result<(), String> {
        Ok(())
    }
}

deepsim_plugin_api::export_plugin!(WrongAbi, abi_version = 999);
