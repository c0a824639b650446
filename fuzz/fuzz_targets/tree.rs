//! `Tree::decode` on arbitrary bytes: never panics; whatever decodes has
//! valid, strictly sorted names, re-encodes to the same bytes and decodes to
//! an equal tree. `Tree::visit` fails exactly where `decode` does, and
//! gives the same nodes.
#![no_main]

use cairn_core::format::{Node, Tree};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut visited = Vec::new();
    let visit = Tree::visit(data, |n| {
        visited.push(n);
        Ok::<(), ()>(())
    });
    let Ok(t) = Tree::decode(data) else {
        assert!(visit.is_err(), "visit accepts what decode refuses");
        return;
    };
    assert!(matches!(visit, Ok(Ok(()))), "visit refuses what decode accepts");
    assert_eq!(visited, t.nodes);
    for (i, n) in t.nodes.iter().enumerate() {
        assert!(Node::valid_name(&n.name));
        assert!(i == 0 || t.nodes[i - 1].name < n.name, "names out of order");
        assert_eq!(t.find(&n.name), Some(n));
    }
    let again = t.encode().expect("a decoded tree encodes");
    assert_eq!(again, data, "tree encoding is not canonical");
    assert_eq!(Tree::decode(&again).expect("re-encoded tree decodes"), t);
});
