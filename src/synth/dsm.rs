//! The digital surface model: the scene rasterised on a ground grid, with its sun shading.
//!
//! One grid row per image row (the views are orthographic along the columns, so image row
//! `y` sees only ground row `y`), sampled along X finer than a pixel. Each row is a height
//! profile; the piecewise-linear surface through its samples *is* the scene that both views
//! render, so the ground truth is exact for it by construction. Shading lives on the grid,
//! fixed to the ground, once per view: both views see the same shadows when they are taken
//! at the same instant, and shadows that moved with the sun otherwise (`--time-gap`; the
//! geometry, hence the ground truth, does not move). Shading is a Lambertian term from
//! the normals and a cast-shadow test against a "shadow height" field propagated away from
//! the sun in one sweep (each sample looks one step towards the sun), linear in the grid size
//! instead of a ray march per sample.

use super::config::MAX_TIME_GAP;
use super::scene::{Object, Scene, Shape, Sun, LEFT, RIGHT, SUN_RAISE_TAN, SUN_TURN_TAN};

/// Samples along X per pixel of ground.
pub const SAMPLES_PER_PX: usize = 2;
/// Terrain is evaluated exactly every this many samples along X.
const TERRAIN_STRIDE: usize = 8;
/// Height of the Y bands that objects are binned into (m).
const BAND_M: f64 = 4.0;

/// The rasterised scene.
pub struct Dsm {
    /// X of sample 0 (m).
    pub x0_m: f64,
    /// Sample spacing along X (m).
    pub dx_m: f64,
    /// Samples per row.
    pub nx: usize,
    /// Y of row 0 (m).
    pub y0_m: f64,
    /// Row spacing (m).
    pub dy_m: f64,
    /// Rows.
    pub ny: usize,
    /// Grid row of image row 0.
    pub row0: usize,
    /// Heights (m), row-major.
    pub z: Vec<f32>,
    /// Object id per sample (0 = ground, else object index + 1).
    pub id: Vec<u32>,
    /// Irradiance factor of the surface at each sample (sky + sun, shadows included), per
    /// view.
    pub shade: [Vec<f32>; 2],
    /// Shadow height per view: a point at (x, y, z) is in the shade when z is below it.
    pub shadow_z: [Vec<f32>; 2],
}

impl Dsm {
    /// Rasterises `scene` for images of `height_px` rows.
    pub fn build(scene: &Scene, height_px: usize) -> Dsm {
        let cam = &scene.camera;
        let gsd = cam.gsd_m;
        let dx = gsd / SAMPLES_PER_PX as f64;
        let (mut x0, mut x1, _, _) = scene.extent;
        let z_top = scene.objects.iter().map(Object::top_m).fold(scene.terrain.max_m, f64::max);
        // Objects up to `reach` m away towards the sun may cast shadows into the view. The
        // grid is sized from the pair's sun before `--time-gap` moves it, with margins for
        // the largest moves allowed: the sample positions, hence the geometry and the ground
        // truth, must not depend on the time gap.
        let max_turn = MAX_TIME_GAP * SUN_TURN_TAN / 2.0;
        let max_raise = MAX_TIME_GAP * SUN_RAISE_TAN / 2.0;
        let sun = &scene.sun;
        let lowest = (sun.tan_elevation - max_raise) / (1.0 + sun.tan_elevation * max_raise);
        let reach = z_top / lowest.max(0.3);
        let cap_x = 0.25 * (x1 - x0);
        let (sx, sy) = sun.towards;
        x1 += (reach * (sx + max_turn).max(0.0)).min(cap_x) + 2.0 * dx;
        x0 += (reach * (sx - max_turn).min(0.0)).max(-cap_x) - 2.0 * dx;
        let nx = ((x1 - x0) / dx).ceil() as usize + 1;
        let cap_rows = height_px / 4 + 8;
        let rows = |towards: f64| ((reach * towards.max(0.0) / gsd).ceil() as usize).min(cap_rows) + 2;
        let (before, after) = (rows(-(sy - max_turn)), rows(sy + max_turn));
        let ny = before + height_px + after;
        let y0 = cam.row_y(-(before as f64));
        let mut dsm = Dsm {
            x0_m: x0,
            dx_m: dx,
            nx,
            y0_m: y0,
            dy_m: gsd,
            ny,
            row0: before,
            z: vec![0.0; nx * ny],
            id: vec![0; nx * ny],
            shade: [Vec::new(), Vec::new()],
            shadow_z: [Vec::new(), Vec::new()],
        };
        dsm.rasterise(scene);
        let [left, right] = &scene.light;
        for view in [LEFT, RIGHT] {
            if view == RIGHT && right.sun == left.sun {
                // The same instant: the same shadows.
                dsm.shadow_z[RIGHT] = dsm.shadow_z[LEFT].clone();
                dsm.shade[RIGHT] = dsm.shade[LEFT].clone();
                break;
            }
            let sun = &scene.light[view].sun;
            dsm.shadow_z[view] = dsm.shadows(sun);
            dsm.shade[view] = dsm.shading(scene, sun, &dsm.shadow_z[view]);
        }
        dsm
    }

    /// X of sample `i`.
    #[inline]
    pub fn x(&self, i: usize) -> f64 {
        self.x0_m + i as f64 * self.dx_m
    }

    /// Y of grid row `r`.
    #[inline]
    pub fn y(&self, r: usize) -> f64 {
        self.y0_m + r as f64 * self.dy_m
    }

    fn rasterise(&mut self, scene: &Scene) {
        // Bin objects by Y band.
        let bands = ((self.ny as f64 * self.dy_m) / BAND_M).ceil() as usize + 1;
        let mut binned: Vec<Vec<u32>> = vec![Vec::new(); bands];
        for (k, obj) in scene.objects.iter().enumerate() {
            let (bx0, bx1, by0, by1) = obj.bbox();
            if bx1 < self.x0_m || bx0 > self.x(self.nx - 1) {
                continue;
            }
            let b0 = ((by0 - self.y0_m) / BAND_M).floor().max(0.0) as usize;
            let b1 = ((by1 - self.y0_m) / BAND_M).floor();
            if b1 < 0.0 {
                continue;
            }
            for band in binned.iter_mut().take((b1 as usize).min(bands - 1) + 1).skip(b0) {
                band.push(k as u32);
            }
        }
        let noise = &scene.noise;
        for r in 0..self.ny {
            let y = self.y(r);
            let row = r * self.nx;
            // The relief varies over tens of metres: exact every TERRAIN_STRIDE samples,
            // linear in between.
            let mut i = 0;
            while i < self.nx {
                let j = (i + TERRAIN_STRIDE).min(self.nx - 1);
                let (za, zb) = (scene.terrain.height(noise, self.x(i), y), scene.terrain.height(noise, self.x(j), y));
                for k in i..=j {
                    let t = if j == i { 0.0 } else { (k - i) as f64 / (j - i) as f64 };
                    self.z[row + k] = (za + (zb - za) * t) as f32;
                }
                if j == self.nx - 1 {
                    break;
                }
                i = j;
            }
            let band = ((y - self.y0_m) / BAND_M).floor() as usize;
            for &k in &binned[band.min(bands - 1)] {
                let obj = &scene.objects[k as usize];
                let interval = match &obj.shape {
                    Shape::Block(b) => b.rect.x_interval(y),
                    Shape::Tree(t) => t.x_interval(y),
                };
                let Some((xa, xb)) = interval else { continue };
                let ia = ((xa - self.x0_m) / self.dx_m).ceil().max(0.0) as usize;
                let ib = ((xb - self.x0_m) / self.dx_m).floor();
                if ib < 0.0 {
                    continue;
                }
                let ib = (ib as usize).min(self.nx - 1);
                let id = k + 1;
                for i in ia..=ib {
                    let x = self.x(i);
                    let h = match &obj.shape {
                        Shape::Block(b) => {
                            let (a, bb) = b.rect.local(x, y);
                            if a.abs() > b.rect.ha || bb.abs() > b.rect.hb {
                                continue;
                            }
                            b.height(a, bb)
                        }
                        Shape::Tree(t) => {
                            let h = t.height(x, y);
                            if h == f64::NEG_INFINITY {
                                continue;
                            }
                            h + t.bump_m * noise.fbm(x + obj.seed as u8 as f64 * 3.1, y, 0.7, 2) as f64
                        }
                    } as f32;
                    let cell = row + i;
                    if h > self.z[cell] {
                        self.z[cell] = h;
                        self.id[cell] = id;
                    }
                }
            }
        }
    }

    /// The shadow-height field: `S(p) = max(z(p), S(p + δ·sun) − δ·tan(elevation))`, swept
    /// from the sun's side so that the upwind neighbour is always known.
    fn shadows(&self, sun: &Sun) -> Vec<f32> {
        let (sx, sy) = sun.towards;
        let te = sun.tan_elevation;
        let (nx, ny, dx, dy) = (self.nx, self.ny, self.dx_m, self.dy_m);
        let z = &self.z;
        let mut shadow = vec![0.0f32; nx * ny];
        let s = &mut shadow;
        if sx.abs() / dx >= sy.abs() / dy {
            // One column towards the sun per step; the row offset is a fraction.
            let delta = dx / sx.abs();
            let off = delta * sy / dy; // |off| ≤ 1
            let drop = (delta * te) as f32;
            let step: isize = if sx > 0.0 { 1 } else { -1 };
            let cols: Vec<usize> = if sx > 0.0 { (0..nx).rev().collect() } else { (0..nx).collect() };
            for (n, &i) in cols.iter().enumerate() {
                for r in 0..ny {
                    let here = z[r * nx + i];
                    let mut v = here;
                    if n > 0 {
                        let ip = (i as isize + step) as usize;
                        let rf = r as f64 + off;
                        if rf >= 0.0 && rf <= (ny - 1) as f64 {
                            let r0 = rf as usize; // rf ≥ 0: truncation is floor
                            let t = (rf - r0 as f64) as f32;
                            let r1 = (r0 + 1).min(ny - 1);
                            let up = s[r0 * nx + ip] * (1.0 - t) + s[r1 * nx + ip] * t;
                            v = v.max(up - drop);
                        }
                    }
                    s[r * nx + i] = v;
                }
            }
        } else {
            let delta = dy / sy.abs();
            let off = delta * sx / dx;
            let drop = (delta * te) as f32;
            let step: isize = if sy > 0.0 { 1 } else { -1 };
            let rows: Vec<usize> = if sy > 0.0 { (0..ny).rev().collect() } else { (0..ny).collect() };
            for (n, &r) in rows.iter().enumerate() {
                for i in 0..nx {
                    let here = z[r * nx + i];
                    let mut v = here;
                    if n > 0 {
                        let rp = (r as isize + step) as usize;
                        let xf = i as f64 + off;
                        if xf >= 0.0 && xf <= (nx - 1) as f64 {
                            let i0 = xf as usize; // xf ≥ 0: truncation is floor
                            let t = (xf - i0 as f64) as f32;
                            let i1 = (i0 + 1).min(nx - 1);
                            let up = s[rp * nx + i0] * (1.0 - t) + s[rp * nx + i1] * t;
                            v = v.max(up - drop);
                        }
                    }
                    s[r * nx + i] = v;
                }
            }
        }
        shadow
    }

    /// Irradiance at every sample of the top surface under `sun`, with its shadow heights.
    fn shading(&self, scene: &Scene, sun: &Sun, shadow_z: &[f32]) -> Vec<f32> {
        let [sx, sy, sz] = sun.direction;
        let direct = (1.0 - sun.sky) / sz;
        let (nx, ny) = (self.nx, self.ny);
        let minmod = |a: f32, b: f32| if a.abs() < b.abs() { a } else { b };
        let mut shade = vec![0.0f32; nx * ny];
        for r in 0..ny {
            for i in 0..nx {
                let c = r * nx + i;
                let zc = self.z[c];
                let gx = if i == 0 || i == nx - 1 { 0.0 } else { minmod(self.z[c + 1] - zc, zc - self.z[c - 1]) } as f64 / self.dx_m;
                let gy = if r == 0 || r == ny - 1 { 0.0 } else { minmod(self.z[c + nx] - zc, zc - self.z[c - nx]) } as f64 / self.dy_m;
                let norm = (gx * gx + gy * gy + 1.0).sqrt();
                let lambert = ((-gx * sx - gy * sy + sz) / norm).max(0.0);
                let lit = lit_fraction(shadow_z[c] - zc);
                // Leaves and steep flanks see less sky.
                let sky = if self.id[c] != 0 && is_tree(scene, self.id[c]) { sun.sky * 0.8 } else { sun.sky };
                shade[c] = (sky + direct * lambert * lit as f64) as f32;
            }
        }
        shade
    }
}

/// Fraction of direct sunlight at a point `depth` m below the shadow height (soft edge).
#[inline]
pub fn lit_fraction(depth: f32) -> f32 {
    (1.0 - (depth - 0.05) / 0.3).clamp(0.0, 1.0)
}

fn is_tree(scene: &Scene, id: u32) -> bool {
    matches!(scene.objects[id as usize - 1].shape, Shape::Tree(_))
}
