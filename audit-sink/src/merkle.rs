//! RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification.
//!
//! - leaf hash `SHA-256(0x00 || entry)`, node hash `SHA-256(0x01 || l || r)`;
//! - `MTH` of `n > 1` leaves splits at `k`, the largest power of two `< n`;
//! - the empty tree hashes to `SHA-256("")`.
//!
//! [`Tree`] keeps every complete aligned subtree hash (one vector per level,
//! about two hashes per leaf), so the root at any size and any proof cost
//! O(log² n) hash operations.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Largest power of two strictly smaller than `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// An append-only Merkle tree of leaf hashes.
#[derive(Debug, Default, Clone)]
pub struct Tree {
    /// `levels[k][i]` = hash of leaves `[i·2^k, (i+1)·2^k)`, complete blocks only.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    pub fn new() -> Tree {
        Tree { levels: vec![Vec::new()] }
    }

    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    pub fn push_entry(&mut self, entry: &[u8]) {
        self.push_leaf_hash(leaf_hash(entry));
    }

    pub fn push_leaf_hash(&mut self, h: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(h);
        let mut level = 0;
        while self.levels[level].len() & 1 == 0 {
            let len = self.levels[level].len();
            let combined = node_hash(&self.levels[level][len - 2], &self.levels[level][len - 1]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(combined);
            level += 1;
        }
    }

    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels.first()?.get(usize::try_from(index).ok()?).copied()
    }

    /// Root of the current tree.
    pub fn root(&self) -> Hash {
        self.mth(0, self.size())
    }

    /// Root of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, crate::SinkError> {
        if size > self.size() {
            return Err(crate::SinkError::Proof(format!("size {size} exceeds the tree size {}", self.size())));
        }
        Ok(self.mth(0, size))
    }

    /// MTH of leaves `[start, end)`; callers keep `end ≤ size`.
    fn mth(&self, start: u64, end: u64) -> Hash {
        let n = end - start;
        if n == 0 {
            return empty_root();
        }
        if n.is_power_of_two() && start & (n - 1) == 0 {
            let level = n.trailing_zeros() as usize;
            return self.levels[level][(start / n) as usize];
        }
        let k = split_point(n);
        node_hash(&self.mth(start, start + k), &self.mth(start + k, end))
    }

    /// RFC 6962 §2.1.1 audit path of leaf `index` in the tree of `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, crate::SinkError> {
        if size > self.size() || index >= size {
            return Err(crate::SinkError::Proof(format!(
                "need index < size ≤ tree size; got index {index}, size {size}, tree size {}",
                self.size()
            )));
        }
        let mut out = Vec::new();
        self.path(index, 0, size, &mut out);
        Ok(out)
    }

    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) {
        let n = end - start;
        if n <= 1 {
            return;
        }
        let k = split_point(n);
        if m < k {
            self.path(m, start, start + k, out);
            out.push(self.mth(start + k, end));
        } else {
            self.path(m - k, start + k, end, out);
            out.push(self.mth(start, start + k));
        }
    }

    /// RFC 6962 §2.1.2 consistency proof between sizes `from` and `to`.
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, crate::SinkError> {
        if from == 0 || from > to || to > self.size() {
            return Err(crate::SinkError::Proof(format!(
                "need 1 ≤ from ≤ to ≤ tree size; got from {from}, to {to}, tree size {}",
                self.size()
            )));
        }
        let mut out = Vec::new();
        if from < to {
            self.subproof(from, 0, to, true, &mut out);
        }
        Ok(out)
    }

    fn subproof(&self, m: u64, start: u64, end: u64, complete: bool, out: &mut Vec<Hash>) {
        let n = end - start;
        if m == n {
            if !complete {
                out.push(self.mth(start, end));
            }
            return;
        }
        let k = split_point(n);
        if m <= k {
            self.subproof(m, start, start + k, complete, out);
            out.push(self.mth(start + k, end));
        } else {
            self.subproof(m - k, start + k, end, false, out);
            out.push(self.mth(start, start + k));
        }
    }
}

/// RFC 9162 §2.1.3.2: verifies an inclusion proof.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && &r == root
}

/// RFC 9162 §2.1.4.2: verifies a consistency proof between two roots.
pub fn verify_consistency(from: u64, to: u64, from_root: &Hash, to_root: &Hash, proof: &[Hash]) -> bool {
    if from == 0 || from > to {
        return false;
    }
    if from == to {
        return proof.is_empty() && from_root == to_root;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if from.is_power_of_two() {
        path.push(*from_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (from - 1, to - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    &fr == from_root && &sr == to_root && snode == 0
}

/// Root of a list of entries, computed the plain recursive RFC 6962 way
/// (no caching). Used as an independent reference in tests and by `verify`.
pub fn reference_root(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes.len() {
        0 => empty_root(),
        1 => leaf_hashes[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&reference_root(&leaf_hashes[..k]), &reference_root(&leaf_hashes[k..]))
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn h(s: &str) -> Hash {
        unhex(s).try_into().unwrap()
    }

    // DESIGN.md §4 (the RFC 6962 / certificate-transparency known answers).
    const LEAVES: [&str; 8] =
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn kat_tree() -> Tree {
        let mut t = Tree::new();
        for l in LEAVES {
            t.push_entry(&unhex(l));
        }
        t
    }

    #[test]
    fn known_answer_roots() {
        assert_eq!(hex(&Tree::new().root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let mut t = Tree::new();
        for (i, l) in LEAVES.iter().enumerate() {
            t.push_entry(&unhex(l));
            assert_eq!(hex(&t.root()), ROOTS[i], "root of {} leaves", i + 1);
        }
        for (i, want) in ROOTS.iter().enumerate() {
            assert_eq!(hex(&t.root_at(i as u64 + 1).unwrap()), *want);
        }
        assert!(t.root_at(9).is_err());
    }

    #[test]
    fn known_answer_proofs() {
        let t = kat_tree();
        let root = t.root();
        // Audit path of leaf 5 in the tree of 8 (certificate-transparency vectors).
        let p = t.inclusion_proof(5, 8).unwrap();
        let want = [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ];
        assert_eq!(p.iter().map(|x| hex(x)).collect::<Vec<_>>(), want);
        assert!(verify_inclusion(5, 8, &t.leaf(5).unwrap(), &p, &root));
        // Consistency 3 → 8.
        let c = t.consistency_proof(3, 8).unwrap();
        let want = [
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ];
        assert_eq!(c.iter().map(|x| hex(x)).collect::<Vec<_>>(), want);
        assert!(verify_consistency(3, 8, &h(ROOTS[2]), &root, &c));
    }

    fn tree_of(n: u64) -> Tree {
        let mut t = Tree::new();
        for i in 0..n {
            t.push_entry(format!("entry {i}").as_bytes());
        }
        t
    }

    #[test]
    fn cached_roots_match_the_reference_recursion() {
        let t = tree_of(70);
        let leaves: Vec<Hash> = (0..70).map(|i| t.leaf(i).unwrap()).collect();
        for n in 0..=70usize {
            assert_eq!(t.root_at(n as u64).unwrap(), reference_root(&leaves[..n]), "n={n}");
        }
    }

    #[test]
    fn every_inclusion_proof_verifies_and_tampering_fails() {
        let t = tree_of(33);
        for size in 1..=33u64 {
            let root = t.root_at(size).unwrap();
            for index in 0..size {
                let leaf = t.leaf(index).unwrap();
                let proof = t.inclusion_proof(index, size).unwrap();
                assert!(verify_inclusion(index, size, &leaf, &proof, &root), "i={index} n={size}");
                // Wrong index, wrong leaf, wrong root. (A wrong *size* can still
                // verify when both sizes give the same path shape — the size is
                // bound by the signed checkpoint, not by the proof.)
                if size > 1 {
                    assert!(!verify_inclusion((index + 1) % size, size, &leaf, &proof, &root));
                }
                assert!(!verify_inclusion(index, size, &leaf_hash(b"forged"), &proof, &root));
                let mut bad_root = root;
                bad_root[0] ^= 1;
                assert!(!verify_inclusion(index, size, &leaf, &proof, &bad_root));
                // Every flipped bit of every proof hash, a truncated and an extended proof.
                for j in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[j][31] ^= 0x80;
                    assert!(!verify_inclusion(index, size, &leaf, &bad, &root));
                }
                if !proof.is_empty() {
                    assert!(!verify_inclusion(index, size, &leaf, &proof[..proof.len() - 1], &root));
                }
                let mut longer = proof.clone();
                longer.push(root);
                assert!(!verify_inclusion(index, size, &leaf, &longer, &root));
            }
        }
        assert!(t.inclusion_proof(33, 33).is_err());
        assert!(t.inclusion_proof(0, 34).is_err());
    }

    #[test]
    fn every_consistency_proof_verifies_and_tampering_fails() {
        let t = tree_of(33);
        for to in 1..=33u64 {
            let to_root = t.root_at(to).unwrap();
            for from in 1..=to {
                let from_root = t.root_at(from).unwrap();
                let proof = t.consistency_proof(from, to).unwrap();
                assert!(verify_consistency(from, to, &from_root, &to_root, &proof), "{from}->{to}");
                let mut bad_from = from_root;
                bad_from[5] ^= 4;
                assert!(!verify_consistency(from, to, &bad_from, &to_root, &proof));
                let mut bad_to = to_root;
                bad_to[5] ^= 4;
                assert!(!verify_consistency(from, to, &from_root, &bad_to, &proof));
                for j in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[j][0] ^= 1;
                    assert!(!verify_consistency(from, to, &from_root, &to_root, &bad), "{from}->{to} j={j}");
                }
                if !proof.is_empty() {
                    assert!(!verify_consistency(from, to, &from_root, &to_root, &proof[1..]));
                }
            }
        }
        assert!(t.consistency_proof(0, 3).is_err());
        assert!(t.consistency_proof(4, 3).is_err());
        assert!(t.consistency_proof(3, 34).is_err());
        assert!(!verify_consistency(0, 3, &empty_root(), &t.root_at(3).unwrap(), &[]));
    }
}
