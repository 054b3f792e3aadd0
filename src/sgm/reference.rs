//! A slow, direct implementation of the regulariser, kept to test the fast one against.
//!
//! It stores every path cost of every direction, visits pixels in a plain order for each
//! direction, and minimises over all labels of the previous pixel explicitly. It follows the
//! same conventions as [`super::aggregate`] (u16 path costs capped at 65534, a saturating u16 sum, a saturated
//! transition counting as unreachable, a path restarting when nothing is reachable).

use super::{directions, Penalty, SgmParams};
use crate::cost::{CostVolume, COST_ONE};
use ndarray::Array2;

const INF: i64 = u16::MAX as i64;

/// Aggregated costs of `volume`, computed the slow way.
pub fn aggregate_reference(volume: &CostVolume, guide: &Array2<f32>, params: &SgmParams) -> Vec<u16> {
    let iv = &volume.intervals;
    let (w, h) = (iv.width() as i32, iv.height() as i32);
    let units = |v: f32| (v * COST_ONE as f32).round().clamp(0.0, (u16::MAX / 2) as f32) as i64;
    let mut sum = vec![0u16; iv.total()];
    let dirs = directions(params.directions);
    for &(dx, dy) in &dirs {
        let mut paths = vec![0i64; iv.total()];
        let ys: Vec<i32> = if dy >= 0 { (0..h).collect() } else { (0..h).rev().collect() };
        let xs: Vec<i32> = if dx >= 0 { (0..w).collect() } else { (0..w).rev().collect() };
        for &y in &ys {
            for &x in &xs {
                let p = iv.entries(x as usize, y as usize);
                let dp = iv.d_min(x as usize, y as usize) as i64;
                let (qx, qy) = (x - dx, y - dy);
                if !(0..w).contains(&qx) || !(0..h).contains(&qy) {
                    for e in p.clone() {
                        paths[e] = volume.costs[e] as i64;
                    }
                    continue;
                }
                let q = iv.entries(qx as usize, qy as usize);
                let dq = iv.d_min(qx as usize, qy as usize) as i64;
                let min_q = q.clone().map(|e| paths[e]).min().unwrap();
                let transition = |jump: i64| -> Option<i64> {
                    match params.penalty {
                        Penalty::Classic { p1, p2, p2_adapt } => Some(match jump {
                            0 => 0,
                            1 => units(p1),
                            _ => {
                                let p2u = units(p2);
                                match p2_adapt {
                                    Some(tau) => {
                                        let dg = (guide[(y as usize, x as usize)] - guide[(qy as usize, qx as usize)]).abs();
                                        ((p2u as f32 * tau / (tau + dg)).round() as i64).max(units(p1))
                                    }
                                    None => p2u,
                                }
                            }
                        }),
                        Penalty::Linear { weight, max_slope } => {
                            let length = ((dx * dx + dy * dy) as f32).sqrt();
                            let max_jump = ((max_slope * length).round() as i64).max(1);
                            (jump <= max_jump).then(|| units(weight) * jump)
                        }
                    }
                };
                let mut any = false;
                let mut values = Vec::with_capacity(p.len());
                for (k, e) in p.clone().enumerate() {
                    let d = dp + k as i64;
                    let mut best = INF;
                    for (j, f) in q.clone().enumerate() {
                        if let Some(t) = transition((d - (dq + j as i64)).abs()) {
                            best = best.min((paths[f] + t).min(INF));
                        }
                    }
                    if let Penalty::Classic { .. } = params.penalty {
                        // A jump to a label outside q's interval is still a "large" jump.
                        best = best.min((min_q + transition(2).unwrap()).min(INF));
                    }
                    let value = if best >= INF { INF } else { (volume.costs[e] as i64 + best - min_q).min(INF - 1) };
                    any |= value != INF;
                    values.push(value);
                }
                for (k, e) in p.clone().enumerate() {
                    paths[e] = if any { values[k] } else { volume.costs[e] as i64 };
                }
            }
        }
        for (s, v) in sum.iter_mut().zip(&paths) {
            *s = s.saturating_add(*v as u16);
        }
    }
    if let Penalty::Linear { .. } = params.penalty {
        let half = (dirs.len() / 2) as u16;
        for (s, &c) in sum.iter_mut().zip(&volume.costs) {
            *s = s.saturating_sub(c.saturating_mul(half));
        }
    }
    sum
}
