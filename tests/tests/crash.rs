//! A client killed with SIGKILL in the middle of writing: afterwards the volume is consistent
//! (`juicefs fsck` clean, every slice's blocks present), every byte acknowledged by `fsync`
//! reads back, and whatever else made it in is the data that was written — never garbage.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use tessera_tests::interop::{open_fs, MIB};
use tessera_tests::tree::pattern;
use tessera_tests::{sqlite_url, Juicefs};

const FILES: u64 = 3;
const CHILD_ENV: &str = "TESSERA_CRASH_CHILD_URL";

/// The child: writes `FILES` files in 256 KiB pieces, fsyncs every MiB and reports each
/// acknowledged length on stdout, until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return; // Only meaningful when started by `killed_writer_loses_nothing_acknowledged`.
    };
    let fs = open_fs(&url).await;
    let mut files = Vec::new();
    for f in 0..FILES {
        files.push(fs.create(format!("/f{f}")).await.unwrap());
    }
    let data: Vec<Vec<u8>> = (0..FILES).map(|f| pattern(f + 1, 200 * MIB)).collect();
    let piece = 256 * 1024;
    let mut stdout = std::io::stdout();
    for step in 0..(200 * MIB / piece) {
        for (f, file) in files.iter().enumerate() {
            let off = step * piece;
            file.write_at(&data[f][off..off + piece], off as u64)
                .await
                .unwrap();
            if (off + piece) % MIB == 0 {
                file.sync_all().await.unwrap();
                writeln!(stdout, "ACK {f} {}", off + piece).unwrap();
                stdout.flush().unwrap();
            }
        }
    }
    // Never reached in the test: the parent kills us long before.
    std::process::exit(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_loses_nothing_acknowledged() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let Some(jfs) = Juicefs::from_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir.path().join("meta.db"));
    jfs.format_file_volume(&url, "crash", &dir.path().join("bucket"), &[]);

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = vec![0usize; FILES as usize];
    let mut acks = 0;
    let reader = BufReader::new(child.stdout.take().unwrap());
    for line in reader.lines() {
        let line = line.unwrap();
        // libtest may print its "test crash_child ..." prefix on the same line.
        let Some(at) = line.find("ACK ") else {
            continue;
        };
        let mut it = line[at + 4..].split_whitespace();
        let f: usize = it.next().unwrap().parse().unwrap();
        let len: usize = it.next().unwrap().parse().unwrap();
        acked[f] = len;
        acks += 1;
        if acks == 40 {
            child.kill().unwrap(); // SIGKILL mid-write
            break;
        }
    }
    child.wait().unwrap();
    assert_eq!(acks, 40, "the child stopped before it was killed");

    // The volume is consistent for the reference client.
    jfs.fsck(&url);
    // And for us: every acknowledged byte is there; anything past it is the written data.
    let fs = open_fs(&url).await;
    for (f, &acked) in acked.iter().enumerate() {
        let got = fs.read(format!("/f{f}")).await.unwrap();
        assert!(
            got.len() >= acked,
            "f{f}: {} bytes, {acked} acknowledged",
            got.len()
        );
        let want = pattern(f as u64 + 1, got.len());
        assert!(got == want, "f{f}: content differs from what was written");
    }
    fs.close().await.unwrap();
}
