//! The fast regulariser against the slow reference, on random small volumes.

use crate::common::Rng;
use deepsim::cost::{CostVolume, Intervals, COST_ONE};
use deepsim::sgm::{aggregate, reference::aggregate_reference, Penalty, SgmParams};
use ndarray::Array2;

fn random_volume(rng: &mut Rng, w: usize, h: usize, wide: bool) -> (CostVolume, Array2<f32>) {
    let volume = crate::common::random_volume(rng, w, h, (-4, 4), if wide { (1, 9) } else { (1, 4) });
    let guide = Array2::from_shape_fn((h, w), |_| rng.unit());
    (volume, guide)
}

fn penalties() -> Vec<Penalty> {
    vec![
        Penalty::Classic { p1: 0.1, p2: 0.5, p2_adapt: None },
        Penalty::Classic { p1: 0.3, p2: 1.2, p2_adapt: Some(0.1) },
        Penalty::Linear { weight: 0.05, max_slope: 1.0 },
        Penalty::Linear { weight: 0.2, max_slope: 3.0 },
        Penalty::Linear { weight: 0.01, max_slope: 0.4 },
    ]
}

#[test]
fn sgm_matches_reference_on_random_volumes_all_directions_both_models() {
    let mut rng = Rng::new(7);
    for case in 0..24 {
        let (w, h) = (rng.range(1, 13) as usize, rng.range(1, 11) as usize);
        let (volume, guide) = random_volume(&mut rng, w, h, case % 2 == 0);
        for directions in [4, 8, 16] {
            for penalty in penalties() {
                let params = SgmParams { directions, penalty };
                let fast = aggregate(&volume, &guide, &params).unwrap();
                let slow = aggregate_reference(&volume, &guide, &params);
                assert_eq!(fast, slow, "case {case}: {w}×{h}, {directions} directions, {penalty:?}");
            }
        }
    }
}

#[test]
fn sgm_matches_reference_with_long_intervals_crossing_register_widths() {
    // Intervals of 1 to 80 candidates, shifted against their neighbours, or rows of equal
    // intervals: the classical step's 16-lane kernel (AVX2, where the CPU has it) with its
    // scalar tails, its pad values at both ends and its same-interval case.
    let mut rng = Rng::new(19);
    for case in 0..6 {
        let (w, h) = (rng.range(3, 20) as usize, rng.range(2, 8) as usize);
        let mut volume = crate::common::random_volume(&mut rng, w, h, (-6, 6), (1, 81));
        if case % 2 == 1 {
            // Rows of equal intervals, and costs up to the saturation.
            let (lo, hi) = (-3, 60);
            volume.intervals = Intervals::from_bounds(w, h, &vec![lo; w * h], &vec![hi; w * h - 1].into_iter().chain([hi - 1]).collect::<Vec<_>>()).unwrap();
            volume.costs = (0..volume.intervals.total()).map(|_| rng.range(0, 30_000) as u16).collect();
        }
        let guide = Array2::from_shape_fn((h, w), |_| rng.unit());
        for directions in [4, 8, 16] {
            for penalty in [Penalty::Classic { p1: 0.1, p2: 0.5, p2_adapt: None }, Penalty::Classic { p1: 0.3, p2: 1.2, p2_adapt: Some(0.1) }] {
                let params = SgmParams { directions, penalty };
                let fast = aggregate(&volume, &guide, &params).unwrap();
                assert_eq!(fast, aggregate_reference(&volume, &guide, &params), "case {case}: {w}×{h}, {directions} directions, {penalty:?}");
            }
        }
    }
}

#[test]
fn sgm_matches_reference_on_wide_rows_split_in_parallel_chunks() {
    // Rows wider than one parallel chunk exercise the chunk boundaries of the row sweeps.
    let mut rng = Rng::new(11);
    let (volume, guide) = random_volume(&mut rng, 150, 6, true);
    for penalty in penalties() {
        let params = SgmParams { directions: 16, penalty };
        assert_eq!(aggregate(&volume, &guide, &params).unwrap(), aggregate_reference(&volume, &guide, &params));
    }
}

#[test]
fn sgm_matches_reference_when_every_pixel_has_the_same_interval() {
    // The same interval everywhere takes the fused two-pass path (the tests above, with
    // per-pixel intervals, the general one): it must give the reference's result for both
    // models, every direction count, sizes down to one pixel and costs reaching the saturation.
    let mut rng = Rng::new(13);
    for case in 0..16 {
        let (w, h) = (rng.range(1, 40) as usize, rng.range(1, 12) as usize);
        let d_min = rng.range(-5, 5) as i32;
        let len = rng.range(1, 40) as i32;
        let intervals = Intervals::uniform(w, h, d_min, d_min + len - 1).unwrap();
        let top = if case % 4 == 3 { 20_000 } else { COST_ONE as i64 };
        let costs = (0..intervals.total()).map(|_| rng.range(0, top) as u16).collect();
        let volume = CostVolume { intervals, costs };
        let guide = Array2::from_shape_fn((h, w), |_| rng.unit());
        for directions in [4, 8, 16] {
            for penalty in penalties() {
                let params = SgmParams { directions, penalty };
                let fast = aggregate(&volume, &guide, &params).unwrap();
                let slow = aggregate_reference(&volume, &guide, &params);
                assert_eq!(fast, slow, "case {case}: {w}×{h}×{len}, {directions} directions, {penalty:?}");
            }
        }
    }
}

#[test]
fn sgm_falls_back_to_the_general_path_when_one_pixel_differs() {
    // One pixel with a narrower interval: not the same interval everywhere any more.
    let mut rng = Rng::new(17);
    let (w, h) = (23, 9);
    let mut lo = vec![-3; w * h];
    let hi = vec![12; w * h];
    lo[5 * w + 11] = 4;
    let intervals = Intervals::from_bounds(w, h, &lo, &hi).unwrap();
    assert_eq!(intervals.common(), None);
    let costs = (0..intervals.total()).map(|_| rng.range(0, COST_ONE as i64) as u16).collect();
    let volume = CostVolume { intervals, costs };
    let guide = Array2::from_shape_fn((h, w), |_| rng.unit());
    for directions in [4, 8, 16] {
        for penalty in penalties() {
            let params = SgmParams { directions, penalty };
            assert_eq!(aggregate(&volume, &guide, &params).unwrap(), aggregate_reference(&volume, &guide, &params));
        }
    }
}

#[test]
fn sgm_with_uniform_costs_keeps_them_uniform() {
    let intervals = Intervals::uniform(9, 7, -2, 5).unwrap();
    let volume = CostVolume { costs: vec![100; intervals.total()], intervals };
    let guide = Array2::zeros((7, 9));
    let params = SgmParams { directions: 8, penalty: Penalty::Classic { p1: 0.1, p2: 0.5, p2_adapt: None } };
    let sum = aggregate(&volume, &guide, &params).unwrap();
    assert!(sum.iter().all(|&s| s == 800), "every path adds exactly its cost when costs are flat");
}

#[test]
fn sgm_rejects_bad_parameters() {
    let intervals = Intervals::uniform(4, 4, 0, 3).unwrap();
    let volume = CostVolume { costs: vec![0; intervals.total()], intervals };
    let guide = Array2::zeros((4, 4));
    let bad = [
        SgmParams { directions: 6, penalty: Penalty::Classic { p1: 0.1, p2: 0.5, p2_adapt: None } },
        SgmParams { directions: 8, penalty: Penalty::Classic { p1: 0.5, p2: 0.1, p2_adapt: None } },
        SgmParams { directions: 8, penalty: Penalty::Classic { p1: f32::NAN, p2: 0.5, p2_adapt: None } },
        SgmParams { directions: 8, penalty: Penalty::Linear { weight: 0.1, max_slope: 0.0 } },
    ];
    for params in bad {
        let err = aggregate(&volume, &guide, &params).unwrap_err();
        assert_eq!(err.kind(), deepsim::ErrorKind::InvalidParameter, "{params:?}: {err}");
    }
    let wrong_guide = Array2::zeros((3, 4));
    let ok = SgmParams { directions: 4, penalty: Penalty::Classic { p1: 0.1, p2: 0.5, p2_adapt: None } };
    assert!(aggregate(&volume, &wrong_guide, &ok).unwrap_err().to_string().contains("guide image"));
}
