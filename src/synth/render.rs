//! Rendering both views and the exact ground truth, one row at a time.
//!
//! Row `y` of both images sees ground row `y` only, so each view of a row is a 2-D problem:
//! a camera centre above a height profile. From a point above a height field, a profile point
//! is visible exactly when its look tangent `u = (X − Xc) / (H − z)` exceeds that of every
//! point between it and the nadir (a running horizon). One sweep outward from the nadir on
//! each side turns the profile into contiguous "visible pieces" sorted by `u`; the surface
//! point seen by any ray is then the intersection of the ray with its piece's segment, solved
//! in closed form. This gives, without approximation for the rendered surface:
//!
//! - the left disparity at each pixel centre (`d = f·B / (H − z) − s` of the point seen);
//! - `defined`: a surface point was hit;
//! - `non-occluded`: the first surface point on the right camera's ray through that point is
//!   the point itself (same depth within 0.01 px of disparity) and it falls inside the right
//!   image;
//! - the right disparity, by the same construction in the right view.
//!
//! Facades are the steep segments between a roof sample and a ground sample: a view whose
//! rays come from the facade's side sees them, the other view does not.

use super::appearance::Appearance;
use super::dsm::{lit_fraction, Dsm};
use super::scene::{Scene, Shape, LEFT, RIGHT};
use ndarray::Array2;

/// Segments steeper than this (rise over run) are facades.
const FACADE_SLOPE: f64 = 3.0;
/// Two points on one ray are the same surface point when their disparities differ by less.
const SAME_POINT_PX: f64 = 0.01;

/// What rendering produces, before the camera models.
pub struct Rendered {
    /// Radiance of the left and right views (relative units, ~[0, 1]).
    pub radiance: [Array2<f32>; 2],
    /// Left disparity at pixel centres, NaN where undefined.
    pub disp_left: Array2<f32>,
    /// A surface point is seen at the left pixel centre.
    pub defined: Array2<bool>,
    /// That point is also seen by the right view, inside its image.
    pub nonocc: Array2<bool>,
    /// Right disparity (right pixel x matches left pixel x + d), if asked for.
    pub disp_right: Option<Array2<f32>>,
}

/// The visible pieces of one row from one camera, sorted by look tangent.
struct Pieces {
    /// Piece `p` covers look tangents `bounds[p] .. bounds[p + 1]`.
    bounds: Vec<f64>,
    /// Profile segment (between samples `k` and `k + 1`) of each piece.
    segs: Vec<u32>,
}

/// A surface point hit by a ray.
#[derive(Clone, Copy)]
struct Hit {
    seg: usize,
    t: f64,
    x: f64,
    z: f64,
}

/// One row's profile as seen from a camera.
struct RowView<'a> {
    z: &'a [f32],
    x0: f64,
    dx: f64,
    xc: f64,
    h: f64,
    pieces: Pieces,
}

impl<'a> RowView<'a> {
    fn new(z: &'a [f32], x0: f64, dx: f64, xc: f64, h: f64) -> Self {
        let n = z.len();
        let u = |i: usize| (x0 + i as f64 * dx - xc) / (h - z[i] as f64);
        let start = ((xc - x0) / dx).ceil();
        let start = if start <= 0.0 { 0 } else if start >= n as f64 { n } else { start as usize };
        // Left of the nadir, walking outward (decreasing X): pieces of decreasing u.
        let mut left: Vec<(f64, f64, u32)> = Vec::new();
        if start > 0 {
            let (mut k, mut horizon) = if start == n { (n as isize - 2, u(n - 1)) } else { (start as isize - 1, 0.0) };
            while k >= 0 {
                let far = u(k as usize);
                if far < horizon {
                    left.push((far, horizon, k as u32));
                    horizon = far;
                }
                k -= 1;
            }
        }
        // Right of the nadir, walking outward: pieces of increasing u.
        let mut right: Vec<(f64, f64, u32)> = Vec::new();
        if start < n {
            let (first, mut horizon) = if start == 0 { (0, u(0)) } else { (start - 1, 0.0) };
            for k in first..n - 1 {
                let far = u(k + 1);
                if far > horizon {
                    right.push((horizon, far, k as u32));
                    horizon = far;
                }
            }
        }
        let mut bounds = Vec::with_capacity(left.len() + right.len() + 1);
        let mut segs = Vec::with_capacity(left.len() + right.len());
        for &(lo, _, k) in left.iter().rev() {
            bounds.push(lo);
            segs.push(k);
        }
        for &(lo, _, k) in &right {
            bounds.push(lo);
            segs.push(k);
        }
        let last = right.last().map(|p| p.1).or(left.first().map(|p| p.1));
        if let Some(hi) = last {
            bounds.push(hi);
        }
        RowView { z, x0, dx, xc, h, pieces: Pieces { bounds, segs } }
    }

    /// The piece containing look tangent `u`, searching from `cursor` (rays come nearly in
    /// order, so this is O(1) amortised).
    #[inline]
    fn find(&self, u: f64, cursor: &mut usize) -> Option<usize> {
        let b = &self.pieces.bounds;
        if b.len() < 2 || u < b[0] || u > b[b.len() - 1] {
            return None;
        }
        let last = b.len() - 2;
        let mut p = (*cursor).min(last);
        while p > 0 && u < b[p] {
            p -= 1;
        }
        while p < last && u >= b[p + 1] {
            p += 1;
        }
        *cursor = p;
        Some(p)
    }

    /// Intersection of the ray of look tangent `u` with the surface.
    #[inline]
    fn hit(&self, u: f64, cursor: &mut usize) -> Option<Hit> {
        let p = self.find(u, cursor)?;
        let seg = self.pieces.segs[p] as usize;
        let (za, zb) = (self.z[seg] as f64, self.z[seg + 1] as f64);
        let xa = self.x0 + seg as f64 * self.dx;
        // u·(H − za − t·Δz) = xa − xc + t·dx
        let den = self.dx + u * (zb - za);
        let t = if den.abs() < 1e-12 { 0.5 } else { ((u * (self.h - za) - (xa - self.xc)) / den).clamp(0.0, 1.0) };
        Some(Hit { seg, t, x: xa + t * self.dx, z: za + t * (zb - za) })
    }

    /// Look tangent of a point.
    #[inline]
    fn look(&self, x: f64, z: f64) -> f64 {
        (x - self.xc) / (self.h - z)
    }
}

/// Renders both views and the ground truth.
pub fn render(scene: &Scene, dsm: &Dsm, look: &Appearance, width: usize, height: usize, supersample: usize, right_disparity: bool) -> Rendered {
    let cam = &scene.camera;
    let mut radiance = [Array2::<f32>::zeros((height, width)), Array2::<f32>::zeros((height, width))];
    let mut disp_left = Array2::<f32>::from_elem((height, width), f32::NAN);
    let mut defined = Array2::from_elem((height, width), false);
    let mut nonocc = Array2::from_elem((height, width), false);
    let mut disp_right = right_disparity.then(|| Array2::<f32>::from_elem((height, width), f32::NAN));
    let offsets: Vec<f64> = (0..supersample).map(|j| (j as f64 + 0.5) / supersample as f64 - 0.5).collect();
    let inv = 1.0 / supersample as f32;
    let right_limit = (-0.5, width as f64 - 0.5);
    let mut top = [vec![0.0f32; dsm.nx], vec![0.0f32; dsm.nx]];
    let gains = [scene.light[LEFT].tint_gain, scene.light[RIGHT].tint_gain];

    for y in 0..height {
        let r = dsm.row0 + y;
        let row = &dsm.z[r * dsm.nx..(r + 1) * dsm.nx];
        let views = [LEFT, RIGHT].map(|v| RowView::new(row, dsm.x0_m, dsm.dx_m, cam.centre_x_m[v], cam.flying_height_m));
        let y_m = dsm.y(r);
        // Radiance of the top surface at every sample of the row, in each view's light; the
        // albedo is the same in both views but for swaying crowns.
        let [top_left, top_right] = &mut top;
        for (i, (out_left, out_right)) in top_left.iter_mut().zip(top_right.iter_mut()).enumerate() {
            let c = r * dsm.nx + i;
            let (id, x, z) = (dsm.id[c], dsm.x(i), dsm.z[c] as f64);
            let (a, tint) = look.top(id, x, y_m, z, LEFT);
            let ar = if look.sways(id) { look.top(id, x, y_m, z, RIGHT).0 } else { a };
            *out_left = a * dsm.shade[LEFT][c] * gains[LEFT][tint as usize];
            *out_right = ar * dsm.shade[RIGHT][c] * gains[RIGHT][tint as usize];
        }
        for (v, view) in views.iter().enumerate() {
            let mut cursor = 0;
            for x in 0..width {
                let mut sum = 0.0f32;
                for &o in &offsets {
                    let u = cam.look_tan(v, x as f64 + o);
                    if let Some(hit) = view.hit(u, &mut cursor) {
                        sum += shade(scene, dsm, look, &top[v], v, r, y_m, &hit);
                    }
                }
                radiance[v][(y, x)] = sum * inv;
            }
        }
        // Ground truth at pixel centres.
        let (lv, rv) = (&views[LEFT], &views[RIGHT]);
        let (mut cl, mut cr) = (0, 0);
        for x in 0..width {
            let Some(p) = lv.hit(cam.look_tan(LEFT, x as f64), &mut cl) else { continue };
            let d = cam.disparity(p.z);
            defined[(y, x)] = true;
            disp_left[(y, x)] = d as f32;
            let xr = x as f64 - d;
            if xr < right_limit.0 || xr >= right_limit.1 {
                continue;
            }
            if let Some(q) = rv.hit(rv.look(p.x, p.z), &mut cr) {
                nonocc[(y, x)] = (cam.disparity(q.z) - d).abs() < SAME_POINT_PX;
            }
        }
        if let Some(dr) = disp_right.as_mut() {
            let mut c = 0;
            for x in 0..width {
                if let Some(q) = rv.hit(cam.look_tan(RIGHT, x as f64), &mut c) {
                    dr[(y, x)] = cam.disparity(q.z) as f32;
                }
            }
        }
    }
    Rendered { radiance, disp_left, defined, nonocc, disp_right }
}

/// Radiance of a surface point in view `view`: albedo × irradiance (Lambertian) × the view's
/// exposure. On top surfaces, linear between the row's samples (`top`, computed once per view
/// and row: texture finer than a pixel is faded out anyway); on facades, computed at the point.
#[allow(clippy::too_many_arguments)] // one call site, in the pixel loop
#[inline]
fn shade(scene: &Scene, dsm: &Dsm, look: &Appearance, top: &[f32], view: usize, r: usize, y: f64, hit: &Hit) -> f32 {
    let base = r * dsm.nx + hit.seg;
    let (za, zb) = (dsm.z[base], dsm.z[base + 1]);
    let rise = (zb - za) as f64;
    if rise.abs() > FACADE_SLOPE * dsm.dx_m {
        let (high, low) = if rise > 0.0 { (base + 1, base) } else { (base, base + 1) };
        let id = dsm.id[high];
        if id != 0 {
            let obj = &scene.objects[id as usize - 1];
            let (nx, ny) = match &obj.shape {
                Shape::Block(b) => b.rect.edge_normal(hit.x, y),
                Shape::Tree(t) => t.rim_normal(hit.x, y),
            };
            let light = &scene.light[view];
            let [sx, sy, sz] = light.sun.direction;
            let lambert = (nx * sx + ny * sy).max(0.0);
            let lit = lit_fraction(dsm.shadow_z[view][low] - hit.z as f32);
            let irradiance = 0.6 * light.sun.sky + (1.0 - light.sun.sky) / sz * lambert * lit as f64;
            let albedo = look.facade(id, hit.x, y, hit.z, (nx, ny), view);
            return albedo * irradiance as f32 * light.tint_gain[look.facade_tint(id) as usize];
        }
    }
    let t = hit.t as f32;
    top[hit.seg] * (1.0 - t) + top[hit.seg + 1] * t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: march the ray down and find the first point below the profile.
    fn brute(z: &[f32], x0: f64, dx: f64, xc: f64, h: f64, u: f64) -> f64 {
        let mut zz = 60.0;
        loop {
            let x = xc + u * (h - zz);
            let fi = (x - x0) / dx;
            let i = fi.floor() as usize;
            let t = fi - i as f64;
            let s = z[i] as f64 * (1.0 - t) + z[i + 1] as f64 * t;
            if zz <= s {
                return zz;
            }
            zz -= 0.0005;
        }
    }

    #[test]
    fn visible_pieces_match_brute_force() {
        // Buildings, a hole, ground, seen from a camera above the middle and from the side.
        let z: Vec<f32> = (0..400)
            .map(|i| match i {
                50..=90 => 20.0,
                91..=130 => 3.0,
                131..=160 => 35.0,
                200..=260 => 12.0 + (i as f32 - 200.0) * 0.1,
                300..=303 => 25.0,
                _ => (i as f32 * 0.05).sin(),
            })
            .collect();
        for xc in [-50.0, 12.0, 25.0, 60.0] {
            let view = RowView::new(&z, 0.0, 0.1, xc, 300.0);
            let mut c = 0;
            let mut tested = 0;
            for k in 0..400 {
                let u = -0.3 + k as f64 * 0.0015;
                // Only rays that stay over the profile between z = −1 and z = 60.
                let (xa, xb) = (xc + u * (300.0 - 60.0), xc + u * (300.0 + 1.0));
                if xa.min(xb) < 0.5 || xa.max(xb) > 39.0 {
                    continue;
                }
                tested += 1;
                let fast = view.hit(u, &mut c).expect("a hit").z;
                let slow = brute(&z, 0.0, 0.1, xc, 300.0, u);
                assert!((fast - slow).abs() < 0.01, "xc {xc}, u {u}: {fast} vs {slow}");
            }
            assert!(tested > 20, "xc {xc}: {tested} rays tested");
        }
    }
}
