//! Reading a callgrind profile of Envoy: instructions per object file.
//!
//! `meshward-bench --instructions` runs Envoy under
//! `valgrind --tool=callgrind --dump-instr=yes`, resets the counters after
//! warm-up and dumps them after a known number of requests. Instruction
//! counts are deterministic where CPU time on a shared machine is not, and
//! the split by object says where an Envoy's extra work is: Envoy's own
//! code, code V8 generated (the guest's wasm and V8's entry and exit
//! stubs, which have no object file), or libc (mostly copies).
//!
//! Only the parts of the format a `--dump-instr=yes` profile uses are
//! read: `ob=` names (compressed as `(id) name`, later `(id)`), cost lines
//! (positions then one cost per event), and `calls=` lines, whose next
//! line is the call's inclusive cost and must not be counted again.

use std::collections::BTreeMap;

/// Code callgrind finds in no object file, above 4 GiB: what V8 generated.
pub const GENERATED: &str = "???";
/// Code in no object file below 4 GiB: under valgrind that is the Envoy
/// binary's own (a stripped segment it does not attribute), which Envoy
/// runs without any filter too.
pub const UNATTRIBUTED_LOW: &str = "??? below 4 GiB";

/// Exclusive cost of the profile's first event (instructions), per object
/// file, keyed by the object's path (or [`GENERATED`]).
pub fn cost_by_object(profile: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut functions: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut function = String::new();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut lines = profile.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        if let Some(rest) = line.strip_prefix("ob=").or_else(|| line.strip_prefix("cob=")) {
            let name = resolve(&mut names, rest);
            if line.starts_with("ob=") {
                current = Some(name);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("fn=").or_else(|| line.strip_prefix("cfn=")) {
            let name = resolve(&mut functions, rest);
            if line.starts_with("fn=") {
                function = name;
            }
            continue;
        }
        if line.starts_with("calls=") {
            // The call's inclusive cost: already counted in the callee.
            lines.next();
            continue;
        }
        let starts_cost = line.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-' || c == '*');
        if !starts_cost {
            continue;
        }
        let mut fields = line.split_whitespace();
        // Positions (instruction address, line), then the events; with one
        // event the cost is the last field.
        let cost = match (fields.next(), fields.next_back()) {
            (Some(_), Some(last)) => {
                last.parse::<u64>().map_err(|_| format!("line {}: not a cost: {line:?}", number + 1))?
            }
            _ => continue,
        };
        let object = current.as_deref().ok_or_else(|| format!("line {}: a cost before any ob=", number + 1))?;
        // Unknown functions are named by address.
        let low = || {
            function.strip_prefix("0x").and_then(|hex| u64::from_str_radix(hex, 16).ok()).is_some_and(|a| a < 1 << 32)
        };
        let object = if object == GENERATED && low() { UNATTRIBUTED_LOW } else { object };
        *totals.entry(object.to_owned()).or_default() += cost;
    }
    if totals.is_empty() {
        return Err("the profile holds no costs".into());
    }
    Ok(totals)
}

/// `(id) name` defines an id, `(id)` refers back to one, a bare name is
/// used as it is.
fn resolve(names: &mut BTreeMap<String, String>, field: &str) -> String {
    let Some(rest) = field.strip_prefix('(') else { return field.to_owned() };
    let Some((id, name)) = rest.split_once(')') else { return field.to_owned() };
    let name = name.trim();
    if name.is_empty() {
        names.get(id).cloned().unwrap_or_else(|| format!("({id})"))
    } else {
        names.insert(id.to_owned(), name.to_owned());
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_summed_per_object_without_counting_calls_twice() {
        let profile = "\
version: 1
positions: instr line
events: Ir
ob=(1) /usr/bin/envoy
fl=(1) ???
fn=(1) 0x100
0x100 0 10
+4 0 5
cob=(2) /lib/libc.so.6
cfn=(2) memcpy
calls=1 0x200 0
0x108 0 700
ob=(2)
fn=(2)
0x200 0 700
ob=(3) ???
fn=(3) 0x00007f0000001000
* 0 40
fn=(4) 0x0000000006280000
0x6280000 0 9
ob=(1)
fn=(1)
-2 0 1
";
        let totals = cost_by_object(profile).unwrap();
        assert_eq!(totals.get("/usr/bin/envoy"), Some(&16), "{totals:?}");
        assert_eq!(totals.get("/lib/libc.so.6"), Some(&700), "{totals:?}");
        assert_eq!(totals.get(GENERATED), Some(&40), "{totals:?}");
        assert_eq!(totals.get(UNATTRIBUTED_LOW), Some(&9), "{totals:?}");
        assert_eq!(totals.len(), 4);
    }

    #[test]
    fn a_profile_without_costs_or_with_a_bad_cost_is_an_error() {
        assert!(cost_by_object("events: Ir\n").is_err());
        assert!(cost_by_object("ob=(1) x\n0x1 0 many\n").is_err());
        assert!(cost_by_object("0x1 0 5\n").is_err());
    }
}
