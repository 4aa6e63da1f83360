//! Any bytes as a policy: an error or an engine, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_engine::policy::Secrets;
use meshward_engine::Engine;

fuzz_target!(|data: &[u8]| {
    let Some((&d, policy)) = data.split_first() else { return };
    let secrets = Secrets {
        placeholder_key: (d & 1 == 1).then(|| "fuzz-placeholder-key-0123456789".to_owned()),
        ..Secrets::default()
    };
    if let Ok(engine) = Engine::from_json(policy, &secrets) {
        // A compiled engine must scan its own source without trouble.
        let _ = engine.scan_text(&String::from_utf8_lossy(policy));
    }
});
