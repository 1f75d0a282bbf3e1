//! A small seeded generator (SplitMix64) for the harness's plans and the
//! benches' synthetic clusters: the same seed makes the same run, with no
//! dependency.

/// SplitMix64.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// `words` × 16 lower-case hex digits (4 words: a container ID).
    pub fn hex(&mut self, words: usize) -> String {
        (0..words)
            .map(|_| format!("{:016x}", self.next_u64()))
            .collect()
    }

    /// An engine ID as engines report it: 12 groups of 4 letters or digits.
    pub fn engine_id(&mut self) -> String {
        let raw = format!(
            "{:016X}{:016X}{:016X}",
            self.next_u64(),
            self.next_u64(),
            self.next_u64()
        );
        raw.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c))
            .collect::<Vec<_>>()
            .join(":")
    }
}
