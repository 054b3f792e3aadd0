//! Shapes of the scene in the ground plane and the height of each kind of object.
//!
//! Everything is a rotated rectangle ("block": building wings, roof superstructures, cars,
//! walls) or a tree crown made of a few overlapping caps. The DSM is rasterised row by row,
//! so each shape answers two questions: which X interval of ground row Y it covers, and its
//! height at a point. No trigonometry: rotations are unit vectors drawn directly.

/// A rectangle of half-sizes `ha` × `hb` centred at (`x`, `y`), its `a` axis along (`c`, `s`).
#[derive(Debug, Clone, Copy)]
pub struct Rect {
    /// Centre X (m).
    pub x: f64,
    /// Centre Y (m).
    pub y: f64,
    /// Cosine of the `a` axis direction.
    pub c: f64,
    /// Sine of the `a` axis direction.
    pub s: f64,
    /// Half-size along `a` (m).
    pub ha: f64,
    /// Half-size along `b` (m).
    pub hb: f64,
}

impl Rect {
    /// Local coordinates (a, b) of a world point.
    #[inline]
    pub fn local(&self, x: f64, y: f64) -> (f64, f64) {
        let (dx, dy) = (x - self.x, y - self.y);
        (self.c * dx + self.s * dy, -self.s * dx + self.c * dy)
    }

    /// World coordinates of a local point.
    pub fn world(&self, a: f64, b: f64) -> (f64, f64) {
        (self.x + self.c * a - self.s * b, self.y + self.s * a + self.c * b)
    }

    /// The X interval covered on ground row `y`, if any.
    pub fn x_interval(&self, y: f64) -> Option<(f64, f64)> {
        let dy = y - self.y;
        // a = c·dx + s·dy, b = −s·dx + c·dy; |a| ≤ ha, |b| ≤ hb.
        let (lo1, hi1) = slab(self.c, self.s * dy, self.ha)?;
        let (lo2, hi2) = slab(-self.s, self.c * dy, self.hb)?;
        let (lo, hi) = (lo1.max(lo2), hi1.min(hi2));
        (lo <= hi).then_some((self.x + lo, self.x + hi))
    }

    /// Bounding box (x0, x1, y0, y1).
    pub fn bbox(&self) -> (f64, f64, f64, f64) {
        let ex = self.ha * self.c.abs() + self.hb * self.s.abs();
        let ey = self.ha * self.s.abs() + self.hb * self.c.abs();
        (self.x - ex, self.x + ex, self.y - ey, self.y + ey)
    }

    /// The outward horizontal normal (world) of the edge nearest to a point.
    pub fn edge_normal(&self, x: f64, y: f64) -> (f64, f64) {
        let (a, b) = self.local(x, y);
        let (na, nb) = if a.abs() * self.hb >= b.abs() * self.ha { (a.signum(), 0.0) } else { (0.0, b.signum()) };
        (self.c * na - self.s * nb, self.s * na + self.c * nb)
    }
}

/// Values of `t` where |k·t + m| ≤ h.
fn slab(k: f64, m: f64, h: f64) -> Option<(f64, f64)> {
    if k.abs() < 1e-12 {
        return (m.abs() <= h).then_some((f64::NEG_INFINITY, f64::INFINITY));
    }
    let (t1, t2) = ((-h - m) / k, (h - m) / k);
    Some((t1.min(t2), t1.max(t2)))
}

/// Roof shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Roof {
    /// Flat, at the eave height (with an optional parapet).
    Flat,
    /// Two planes meeting at a ridge along the long axis.
    Gable,
    /// Four planes; the ridge is shortened by the half-width at both ends.
    Hip,
    /// One plane rising across the short axis.
    Shed,
    /// A car: body up to the eave height, a cabin up to the ridge height in the middle.
    Car,
}

/// A prism with a roof: building wings, superstructures, walls, cars.
#[derive(Debug, Clone)]
pub struct Block {
    /// Footprint.
    pub rect: Rect,
    /// Ground level of the object (m), the bottom of its facades.
    pub base_m: f64,
    /// Height of the eaves / flat top (m, absolute).
    pub eave_m: f64,
    /// Height of the ridge (m, absolute); equals `eave_m` for flat tops.
    pub ridge_m: f64,
    /// Roof shape.
    pub roof: Roof,
    /// Parapet height above a flat roof (m), 0 = none.
    pub parapet_m: f64,
}

/// Width of a parapet (m).
pub const PARAPET_WIDTH_M: f64 = 0.35;

impl Block {
    /// Height at a point inside the footprint (local coordinates).
    #[inline]
    pub fn height(&self, a: f64, b: f64) -> f64 {
        let r = &self.rect;
        // Pitched roofs rise across the short axis.
        let (along, across, h_along, h_across) =
            if r.ha >= r.hb { (a.abs(), b, r.ha, r.hb) } else { (b.abs(), a, r.hb, r.ha) };
        let rise = self.ridge_m - self.eave_m;
        match self.roof {
            Roof::Flat => {
                let edge = (h_along - along).min(h_across - across.abs());
                if self.parapet_m > 0.0 && edge < PARAPET_WIDTH_M { self.eave_m + self.parapet_m } else { self.eave_m }
            }
            Roof::Gable => self.eave_m + rise * (1.0 - across.abs() / h_across),
            Roof::Hip => {
                let slope = rise / h_across;
                self.eave_m + slope * (h_across - across.abs()).min(h_along - along)
            }
            Roof::Shed => self.eave_m + rise * (across + h_across) / (2.0 * h_across),
            Roof::Car => {
                // Cabin over the middle 45 % of the length, set slightly back; rounded ends.
                let t = (a / r.ha.max(1e-6) + 0.08).abs();
                if t < 0.42 && across.abs() < 0.85 * h_across {
                    self.ridge_m
                } else if t > 0.93 {
                    self.eave_m - 0.25
                } else {
                    self.eave_m
                }
            }
        }
    }

    /// True when a pitched roof slopes along the local `b` axis (its ridge runs along `a`);
    /// roof tiles are laid in rows across the slope.
    pub fn slope_axis_is_b(&self) -> bool {
        self.rect.ha >= self.rect.hb
    }
}

/// One cap of a tree crown.
#[derive(Debug, Clone, Copy)]
pub struct Cap {
    /// Centre X (m).
    pub x: f64,
    /// Centre Y (m).
    pub y: f64,
    /// Radius (m).
    pub r: f64,
    /// Height of the top (m, absolute).
    pub top_m: f64,
    /// Height drop from the top to the rim (m).
    pub depth_m: f64,
    /// Cone (conifer) rather than a rounded cap.
    pub cone: bool,
}

/// A tree: a few overlapping caps; the crown is their upper envelope.
#[derive(Debug, Clone)]
pub struct Tree {
    /// Centre X (m).
    pub x: f64,
    /// Centre Y (m).
    pub y: f64,
    /// Radius enclosing every cap (m).
    pub radius_m: f64,
    /// Crown parts.
    pub caps: Vec<Cap>,
    /// Amplitude of the leafy bumps (m).
    pub bump_m: f64,
}

impl Tree {
    /// Crown height at a point (without bumps), or −∞ outside every cap.
    #[inline]
    pub fn height(&self, x: f64, y: f64) -> f64 {
        let mut best = f64::NEG_INFINITY;
        for cap in &self.caps {
            let (dx, dy) = (x - cap.x, y - cap.y);
            let q = (dx * dx + dy * dy) / (cap.r * cap.r);
            if q < 1.0 {
                let h = if cap.cone {
                    cap.top_m - cap.depth_m * q.sqrt()
                } else {
                    cap.top_m - cap.depth_m * (1.0 - (1.0 - q).sqrt())
                };
                best = best.max(h);
            }
        }
        best
    }

    /// The X interval covered on ground row `y`.
    pub fn x_interval(&self, y: f64) -> Option<(f64, f64)> {
        let dy = y - self.y;
        let r2 = self.radius_m * self.radius_m - dy * dy;
        (r2 > 0.0).then(|| {
            let h = r2.sqrt();
            (self.x - h, self.x + h)
        })
    }

    /// Outward horizontal normal at a point of the crown's rim.
    pub fn rim_normal(&self, x: f64, y: f64) -> (f64, f64) {
        let (dx, dy) = (x - self.x, y - self.y);
        let r = (dx * dx + dy * dy).sqrt();
        if r < 1e-9 { (1.0, 0.0) } else { (dx / r, dy / r) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rect_interval_matches_inside_test() {
        let r = Rect { x: 3.0, y: -2.0, c: 0.6, s: 0.8, ha: 5.0, hb: 2.0 };
        for iy in -80..80 {
            let y = -2.0 + iy as f64 * 0.1;
            let iv = r.x_interval(y);
            for ix in -100..100 {
                let x = 3.0 + ix as f64 * 0.1 + 0.013;
                let (a, b) = r.local(x, y);
                let inside = a.abs() <= 5.0 && b.abs() <= 2.0;
                let in_iv = iv.is_some_and(|(lo, hi)| x >= lo && x <= hi);
                assert_eq!(inside, in_iv, "({x}, {y})");
            }
        }
    }

    #[test]
    fn roofs_span_eave_to_ridge() {
        let rect = Rect { x: 0.0, y: 0.0, c: 1.0, s: 0.0, ha: 6.0, hb: 4.0 };
        let b = |roof| Block { rect, base_m: 0.0, eave_m: 6.0, ridge_m: 9.0, roof, parapet_m: 0.0 };
        assert_eq!(b(Roof::Gable).height(0.0, 0.0), 9.0);
        assert_eq!(b(Roof::Gable).height(0.0, 4.0), 6.0);
        assert_eq!(b(Roof::Hip).height(6.0, 0.0), 6.0);
        assert_eq!(b(Roof::Hip).height(0.0, 0.0), 9.0);
        assert_eq!(b(Roof::Flat).height(1.0, 1.0), 6.0);
    }
}
