//! Near duplicates: an item whose nearest neighbour is closer than a cosine-distance threshold, and groups
//! of them (connected components of the below-threshold pairs among the kNN lists).

use super::knn::Knn;

#[derive(Debug, Clone, PartialEq)]
pub struct Duplicates {
    /// 1 when the nearest neighbour is closer than the threshold.
    pub flags: Vec<u32>,
    /// Smallest member id of the item's group, u32::MAX for items in no group.
    pub groups: Vec<u32>,
    pub flagged: usize,
    pub group_count: usize,
}

pub fn near_duplicates(knn: &Knn, threshold: f32) -> Duplicates {
    let n = knn.n;
    let mut parent: Vec<u32> = (0..n as u32).collect();
    fn find(parent: &mut [u32], mut i: u32) -> u32 {
        while parent[i as usize] != i {
            parent[i as usize] = parent[parent[i as usize] as usize];
            i = parent[i as usize];
        }
        i
    }
    let mut flags = vec![0u32; n];
    for (i, flag) in flags.iter_mut().enumerate() {
        for (&j, &d) in knn.row_ids(i).iter().zip(knn.row_dists(i)) {
            if d >= threshold || j == u32::MAX {
                break;
            }
            *flag = 1;
            let (a, b) = (find(&mut parent, i as u32), find(&mut parent, j));
            // Union towards the smaller root, so every root is its group's smallest member.
            if a < b {
                parent[b as usize] = a;
            } else if b < a {
                parent[a as usize] = b;
            }
        }
    }
    // A neighbour of a flagged item is in its group even when its own nearest neighbour is another item.
    let mut in_pair = flags.clone();
    for i in 0..n {
        let root = find(&mut parent, i as u32);
        if root != i as u32 {
            in_pair[i] = 1;
            in_pair[root as usize] = 1;
        }
    }
    let groups: Vec<u32> =
        (0..n).map(|i| if in_pair[i] == 1 { find(&mut parent, i as u32) } else { u32::MAX }).collect();
    let group_count = (0..n).filter(|&i| groups[i] == i as u32).count();
    let flagged = flags.iter().filter(|&&f| f == 1).count();
    Duplicates { flags, groups, flagged, group_count }
}
