//! The secondary's checks run on a fixed set of threads (`transfer-workers`): 24 secondary
//! zones of one nsxdp primary, all due at once at start, all transferred by 2 workers — and
//! the server never has more than 2 transfer threads.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, soa_serial, start_nsxdp, TEST_SECRET};

const ZONES: usize = 24;

fn zone_text(i: usize) -> String {
    format!("$ORIGIN z{i}.test.\n$TTL 300\n@ SOA ns hm {} 7200 900 1209600 300\n@ NS ns\nns A 192.0.2.1\n", 100 + i)
}

/// Threads of `pid` named `name`.
fn threads(pid: u32, name: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn many_due_zones_share_a_few_workers() {
    let (pd, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (pp, sp) = (free_port(), free_port());
    let mut primary = format!(
        "[server]\nlisten = [\"127.0.0.1:{pp}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\n\
         [[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{TEST_SECRET}\"\n\
         [[acl]]\nname = \"secondaries\"\naddress = [\"127.0.0.1\"]\nkey = \"xfr\"\naction = [\"transfer\"]\n"
    );
    let mut secondary = format!(
        "[server]\nlisten = [\"127.0.0.1:{sp}\"]\ndata-dir = \"data\"\ncontrol = \"data/ctl.sock\"\ntransfer-workers = 2\n\
         [[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{TEST_SECRET}\"\n"
    );
    for i in 0..ZONES {
        std::fs::write(pd.path().join(format!("z{i}.zone")), zone_text(i)).unwrap();
        primary += &format!(
            "[[zone]]\nname = \"z{i}.test.\"\nfile = \"z{i}.zone\"\nacl = [\"secondaries\"]\nnotify-ns = false\n"
        );
        secondary += &format!(
            "[[zone]]\nname = \"z{i}.test.\"\nrole = \"secondary\"\nprimaries = [\"127.0.0.1:{pp} key xfr\"]\nnotify-ns = false\n"
        );
    }
    let (pc, sc) = (pd.path().join("nsxdp.toml"), sd.path().join("nsxdp.toml"));
    std::fs::write(&pc, primary).unwrap();
    std::fs::write(&sc, secondary).unwrap();
    let _p = start_nsxdp(pd.path(), &pc);
    let s = start_nsxdp(sd.path(), &sc);
    let (t0, mut most) = (Instant::now(), 0);
    let mut missing: Vec<usize> = (0..ZONES).collect();
    while !missing.is_empty() {
        most = most.max(threads(s.pid(), "nsxdp-xfrin"));
        missing.retain(|&i| soa_serial(sp, &format!("z{i}.test.")) != Some(100 + i as u32));
        assert!(t0.elapsed() < Duration::from_secs(60), "not transferred: {missing:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(most, 2, "transfer threads seen");
    assert_eq!(threads(s.pid(), "nsxdp-xfrin"), 2);
}
