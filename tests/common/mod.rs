//! Shared helpers: a seeded generator and synthetic stereo scenes with known disparity.

use deepsim::pipeline::Pair;
use ndarray::Array2;

/// SplitMix64: small, seeded, deterministic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform integer in [lo, hi].
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }
}

/// A continuous random texture: octaves of bilinearly interpolated value noise on a lattice.
pub struct Texture {
    octaves: Vec<(f32, Array2<f32>)>,
}

impl Texture {
    pub fn new(seed: u64, width: usize, height: usize) -> Self {
        let mut rng = Rng::new(seed);
        let octaves = [(1.5f32, 1.0f32), (3.0, 0.7), (6.0, 0.5), (12.0, 0.3)]
            .iter()
            .map(|&(cell, amp)| {
                let (gw, gh) = ((width as f32 / cell) as usize + 3, (height as f32 / cell) as usize + 3);
                (cell, Array2::from_shape_fn((gh, gw), |_| amp * rng.unit()))
            })
            .collect();
        Texture { octaves }
    }

    /// Grey value in [0, 1] at continuous column `u` of row `y`.
    pub fn at(&self, u: f32, y: usize) -> f32 {
        let mut v = 0.0;
        let mut total = 0.0;
        for (cell, grid) in &self.octaves {
            let gx = (u / cell + 1.0).clamp(0.0, (grid.ncols() - 2) as f32);
            let gy = (y as f32 / cell + 1.0).clamp(0.0, (grid.nrows() - 2) as f32);
            let (x0, y0) = (gx.floor() as usize, gy.floor() as usize);
            let (fx, fy) = (gx - x0 as f32, gy - y0 as f32);
            let top = grid[(y0, x0)] * (1.0 - fx) + grid[(y0, x0 + 1)] * fx;
            let bottom = grid[(y0 + 1, x0)] * (1.0 - fx) + grid[(y0 + 1, x0 + 1)] * fx;
            v += top * (1.0 - fy) + bottom * fy;
            total += 1.0;
        }
        (v / total).clamp(0.0, 1.0)
    }
}

/// A scene with a known disparity field.
pub struct Scene {
    pub pair: Pair,
    pub gt: Array2<f32>,
}

/// A piecewise-planar scene: a slanted background plane and a raised, slanted rectangle in
/// front of it. The left image is a texture painted on the surfaces (left pixel x shows texture
/// column x); the right image shows, at each pixel xr, the front-most surface point whose left
/// position x satisfies x − d(x) = xr, solved exactly per plane. So left (x, y) matches right
/// (x − d, y) wherever that surface point is visible in both views, and the background band just
/// left of the rectangle is truly hidden in the right view.
pub fn planar_scene(seed: u64, width: usize, height: usize) -> Scene {
    let texture = Texture::new(seed, width + 64, height);
    // d = a(y) + b·x on each plane; the rectangle spans xa < x < xb, ya < y < yb.
    let background = |y: f32| (8.0 + 0.01 * y, 0.015f32);
    let front = |y: f32| (20.0 - 0.01 * y, 0.02f32);
    let (xa, xb) = ((width / 3) as f32 + 0.5, (2 * width / 3) as f32 - 0.5);
    let rows_inside = |y: usize| y > height / 4 && y < 3 * height / 4;
    let gt = Array2::from_shape_fn((height, width), |(y, x)| {
        let xf = x as f32;
        let (a, b) = if rows_inside(y) && xf > xa && xf < xb { front(y as f32) } else { background(y as f32) };
        a + b * xf
    });
    let left = Array2::from_shape_fn((height, width), |(y, x)| texture.at(x as f32 + 32.0, y));
    let right = Array2::from_shape_fn((height, width), |(y, xr)| {
        let xr = xr as f32;
        let (a, b) = front(y as f32);
        let x_front = (xr + a) / (1.0 - b);
        let x = if rows_inside(y) && x_front > xa && x_front < xb {
            x_front
        } else {
            let (a, b) = background(y as f32);
            (xr + a) / (1.0 - b)
        };
        texture.at(x + 32.0, y)
    });
    Scene {
        pair: Pair {
            left_valid: Array2::from_elem(left.dim(), true),
            right_valid: Array2::from_elem(right.dim(), true),
            left,
            right,
        },
        gt,
    }
}

/// The default configuration of the CLI, for a given range and number of levels.
pub fn config(disp_min: i32, disp_max: i32, levels: u32) -> deepsim::pipeline::MatchConfig {
    use deepsim::pipeline::{pyramid_steps, Fill, MatchConfig, Regularizer};
    use deepsim::pyramid::Propagation;
    use deepsim::sgm::{Penalty, SgmParams};
    let sgm = Regularizer::Sgm(SgmParams { directions: 8, penalty: Penalty::Classic { p1: 0.2, p2: 0.8, p2_adapt: None } });
    let propagation = Propagation { dilate_alti_px: 4, dilate_plani_px: 2, uncertain_full_range: true };
    MatchConfig {
        disp_min,
        disp_max,
        steps: pyramid_steps(levels, sgm, propagation, |_| 0),
        subpixel: true,
        lr_check_px: Some(1.0),
        lr_check_mode: Default::default(),
        median: true,
        min_region_px: 50,
        fill: Fill::None,
        keep_steps: false,
        tiles: None,
        memory_budget: None,
    }
}

/// Checks every file of `dir` (each starting with `<!-- expect: MESSAGE -->`): `load` must fail
/// with an error that contains MESSAGE and names the file. Returns the number of files.
pub fn check_invalid_files<T>(dir: &std::path::Path, load: impl Fn(&std::path::Path) -> deepsim::Result<T>) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("<!-- expect: "))
            .and_then(|l| l.strip_suffix(" -->"))
            .unwrap_or_else(|| panic!("{}: first line must be <!-- expect: … -->", path.display()));
        let err = match load(&path) {
            Ok(_) => panic!("{} must fail", path.display()),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(expected), "{}: expected '{expected}' in: {err}", path.display());
        assert!(err.contains(path.to_str().unwrap()), "{}: the message names the file: {err}", path.display());
        count += 1;
    }
    count
}

/// A cost volume with random intervals (lower bounds drawn in `lo`, lengths in `len`, both
/// inclusive ranges) and random costs.
pub fn random_volume(rng: &mut Rng, w: usize, h: usize, lo: (i64, i64), len: (i64, i64)) -> deepsim::cost::CostVolume {
    let n = w * h;
    let (mut l, mut u) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let a = rng.range(lo.0, lo.1) as i32;
        l.push(a);
        u.push(a + rng.range(len.0, len.1) as i32 - 1);
    }
    let intervals = deepsim::cost::Intervals::from_bounds(w, h, &l, &u).unwrap();
    let costs = (0..intervals.total()).map(|_| rng.range(0, deepsim::cost::COST_ONE as i64) as u16).collect();
    deepsim::cost::CostVolume { intervals, costs }
}


/// Writes `values` (0..1) as an 8-bit grey PNG, rounding to the nearest level.
pub fn save_grey(path: &std::path::Path, values: &Array2<f32>) {
    let (h, w) = values.dim();
    image::GrayImage::from_fn(w as u32, h as u32, |x, y| image::Luma([(values[(y as usize, x as usize)] * 255.0).round() as u8]))
        .save(path)
        .unwrap();
}
