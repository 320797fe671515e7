//! Strings, arrays, arrays of strings and nested arrays.

use tabledb::{FixedStr, Table};

const TAG_LEN: usize = 6;

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Profile {
    scores: [u32; 4],
    grid: [[u16; 3]; 2],
    name: FixedStr<30>,
    tags: [FixedStr<6>; 2],
    nick: FixedStr<TAG_LEN>,
    flags: [bool; 4],
}

const _: () = {
    assert!(Profile::SCORES_OFFSET == 0);
    assert!(Profile::GRID_OFFSET == 16);
    assert!(Profile::NAME_OFFSET == 28);
    assert!(Profile::TAGS_OFFSET == 60);
    assert!(Profile::NICK_OFFSET == 76);
    assert!(Profile::FLAGS_OFFSET == 84);
    assert!(<Profile as Table>::RECORD_SIZE == 88);
};

fn main() {
    let mut p = Profile {
        scores: [1, 2, 3, 4],
        grid: [[1, 2, 3], [4, 5, 6]],
        name: FixedStr::new("ada").unwrap(),
        tags: [FixedStr::new("a").unwrap(), FixedStr::new("b").unwrap()],
        nick: FixedStr::new("nick").unwrap(),
        flags: [true, false, true, false],
    };
    Profile::SCORES.get_mut(&mut p)[0] = 10;
    assert_eq!(Profile::SCORES.get(&p), &[10, 2, 3, 4]);
    assert_eq!(Profile::NAME.get(&p).as_str(), "ada");
}
