//! The bincode records the store keeps (items, skipped records, tags, space info) and the JSON dataset info, decoded from
//! arbitrary bytes through heed's codec exactly as the store does: an error is fine, a panic or an unbounded
//! allocation is not.
#![no_main]

use heed::BytesDecode;
use heed::types::{SerdeBincode, SerdeJson};
use libfuzzer_sys::fuzz_target;
use torchlight_store::{DatasetInfo, Item, ItemRef, Skipped, SpaceInfo, Tag};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 5 {
        0 => {
            if let Ok(item) = SerdeBincode::<Item>::bytes_decode(rest) {
                // The borrowed prefix view must agree with the owned decode.
                let r = SerdeBincode::<ItemRef>::bytes_decode(rest).expect("ItemRef decodes where Item does");
                assert_eq!((r.source, r.label), (item.source.as_str(), item.label));
            }
        }
        1 => drop(SerdeBincode::<Skipped>::bytes_decode(rest)),
        2 => drop(SerdeBincode::<Tag>::bytes_decode(rest)),
        3 => drop(SerdeBincode::<SpaceInfo>::bytes_decode(rest)),
        _ => drop(SerdeJson::<DatasetInfo>::bytes_decode(rest)),
    }
});
