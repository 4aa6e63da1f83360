//! `json::walk` agrees with serde_json on what is JSON, reports spans that
//! sit between quotes, and `json::unescape` decodes like serde_json with an
//! offset map that is monotone and within bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_engine::json::{self, JsonErrorKind, PathSeg, StringLeaf, Visitor};

#[path = "common.rs"]
mod common;

struct Check<'s> {
    src: &'s str,
    max_depth: usize,
    leaves: Vec<StringLeaf>,
}

impl<'a> Visitor<'a> for Check<'_> {
    fn string(&mut self, path: &[PathSeg<'a>], leaf: StringLeaf) {
        assert!(path.len() <= self.max_depth);
        assert!(leaf.start <= leaf.end && leaf.end < self.src.len(), "{leaf:?}");
        let b = self.src.as_bytes();
        assert_eq!((b[leaf.start - 1], b[leaf.end]), (b'"', b'"'), "{leaf:?}");
        assert_eq!(leaf.escaped, self.src[leaf.start..leaf.end].contains('\\'));
        self.leaves.push(leaf);
    }

    fn scalar(&mut self, path: &[PathSeg<'a>], start: usize, end: usize) {
        assert!(path.len() <= self.max_depth);
        assert!(start < end && end <= self.src.len());
        assert!(common::is_json(self.src[start..end].as_bytes()), "{}", &self.src[start..end]);
    }

    fn object_end(&mut self, _path: &[PathSeg<'a>], close: usize, _empty: bool) {
        assert_eq!(self.src.as_bytes().get(close), Some(&b'}'));
    }
}

/// Offsets are monotone, within `raw`, one per decoded byte plus the end,
/// and every decoded char starts at a raw char boundary.
fn check_map(raw: &str, text: &str, map: &[u32]) {
    assert_eq!(map.len(), text.len() + 1, "{raw:?}");
    assert!(map.windows(2).all(|w| w[0] <= w[1]), "{raw:?} {map:?}");
    assert!(map.iter().all(|&m| m as usize <= raw.len()), "{raw:?} {map:?}");
    assert_eq!(*map.last().unwrap() as usize, raw.len());
    for (i, _) in text.char_indices() {
        assert!(raw.is_char_boundary(map[i] as usize), "{raw:?} {map:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&d, rest)) = data.split_first() else { return };
    let Ok(src) = std::str::from_utf8(rest) else { return };
    let max_depth = usize::from(d % 40) + 1;

    // Never trusted to be validated: any text must decode without panicking.
    let mut map = Vec::new();
    let text = json::unescape(src, Some(&mut map));
    check_map(src, &text, &map);

    let mut c = Check { src, max_depth, leaves: Vec::new() };
    match json::walk(src, max_depth, &mut c) {
        // Depth ≤ 40, below serde_json's own recursion limit.
        Ok(()) => assert!(common::is_json(src.as_bytes()), "walk accepted what serde_json refuses"),
        Err(e) if matches!(e.kind, JsonErrorKind::TooDeep { .. }) => {}
        Err(e) => {
            assert!(e.offset <= src.len());
            assert!(!common::is_json(src.as_bytes()), "walk refused valid JSON: {e}");
        }
    }
    for leaf in &c.leaves {
        let raw = &src[leaf.start..leaf.end];
        let mut map = Vec::new();
        let text = json::unescape(raw, Some(&mut map));
        check_map(raw, &text, &map);
        // serde_json refuses lone surrogates, which unescape turns into U+FFFD.
        match serde_json::from_str::<String>(&src[leaf.start - 1..leaf.end + 1]) {
            Ok(expected) => assert_eq!(text, expected),
            Err(_) => assert!(text.contains('\u{fffd}'), "{raw:?}"),
        }
    }
});
