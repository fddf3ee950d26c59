//! Config parsing with environment overrides: any text and any variables
//! give a config or an error naming the key, never a panic.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    text: String,
    vars: Vec<(String, String)>,
}

fuzz_target!(|input: Input| {
    let vars = input
        .vars
        .into_iter()
        .map(|(k, v)| (format!("IPGATE_{k}"), v));
    match ipgate_config::Config::parse(&input.text, vars) {
        Ok(c) => {
            assert!(c.proxy.threads >= 1);
            for r in &c.proxy.routes {
                assert!(r.host.is_some() || r.path_prefix.is_some());
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
        }
    }
});
