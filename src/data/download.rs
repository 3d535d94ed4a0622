//! Files fetched by name into a cache (`EZFLT_DATA`, default `~/.cache/ezflt/data`): tried
//! mirror by mirror, resumed after a broken connection, checked against sha256, and only
//! then renamed into place — a file in the cache is a verified file.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a dataset's files come from and what each must hash to (`data.mirrors`,
/// `data.sha256`).
#[derive(Clone, Debug, Default)]
pub struct Remote {
    /// Base URLs tried in order; a file's URL is the base followed by its name.
    pub mirrors: Vec<String>,
    /// File name -> lowercase hex sha256.
    pub sha256: BTreeMap<String, String>,
}

/// `EZFLT_DATA`, else `~/.cache/ezflt/data`.
pub fn cache_root() -> PathBuf {
    match std::env::var_os("EZFLT_DATA").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(crate::run::settings::expand_home(&p.to_string_lossy())),
        None => PathBuf::from(crate::run::settings::expand_home("~/.cache/ezflt/data")),
    }
}

/// Makes sure `<cache>/<dataset>/` holds every file in `files`, downloading what is
/// missing; returns that folder. Several processes (a sweep's jobs) may call this at once:
/// one downloads while the others wait on a lock.
pub fn fetch(dataset: &str, files: &[&str], remote: &Remote) -> Result<PathBuf> {
    let dir = cache_root().join(dataset);
    if files.iter().all(|f| dir.join(f).is_file()) {
        return Ok(dir);
    }
    for f in files {
        if !remote.sha256.contains_key(*f) {
            bail!(
                "data.sha256 has no entry for '{f}': every downloaded file is checked; add \
                 `{f}: <sha256>` under sha256 in data/{dataset}.yaml"
            );
        }
    }
    if remote.mirrors.is_empty() {
        bail!(
            "data.mirrors is empty and {} does not hold {}; add a mirror, or set \
             data.path=<folder with the files>",
            dir.display(),
            files.join(", ")
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "creating the data cache {} (set EZFLT_DATA to another folder, or data.path to \
             files already on disk)",
            dir.display()
        )
    })?;
    let _lock = Lock::take(&dir)?;
    let missing: Vec<&str> = files
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    for f in &missing {
        download(dataset, f, &remote.sha256[*f], &dir, &missing, remote)?;
    }
    Ok(dir)
}

/// How many times one mirror is tried for one file (a broken connection resumes).
#[cfg(feature = "download")]
const ATTEMPTS: u32 = 4;

/// Downloads `name` into `dir` from the first mirror that serves it whole; `missing` is
/// what the error's manual step lists.
fn download(
    dataset: &str,
    name: &str,
    sha: &str,
    dir: &Path,
    missing: &[&str],
    remote: &Remote,
) -> Result<()> {
    let dest = dir.join(name);
    let part = dir.join(format!("{name}.part"));
    let mut failures = Vec::new();
    for mirror in &remote.mirrors {
        let url = join_url(mirror, name);
        crate::shell::note(format_args!("Downloading {url}\n"));
        match get_verified(&url, &part, sha) {
            Ok(()) => {
                std::fs::rename(&part, &dest)
                    .with_context(|| format!("moving {} to {}", part.display(), dest.display()))?;
                return Ok(());
            }
            Err(e) => failures.push(format!("  {url}: {e:#}")),
        }
    }
    let urls: Vec<String> = missing
        .iter()
        .map(|f| format!("  {}", join_url(&remote.mirrors[0], f)))
        .collect();
    bail!(
        "could not download {dataset}'s {name}:\n{}\nIf this machine is offline or the \
         mirrors are down, fetch by hand\n{}\ninto {} (or into any folder, then set \
         data.path=<that folder>)",
        failures.join("\n"),
        urls.join("\n"),
        dir.display()
    )
}

fn join_url(mirror: &str, name: &str) -> String {
    format!("{}/{name}", mirror.trim_end_matches('/'))
}

/// Downloads `url` into `part` (resuming what a broken attempt left there) until it is
/// complete, then checks its sha256. A wrong checksum removes the file.
#[cfg(feature = "download")]
fn get_verified(url: &str, part: &Path, sha: &str) -> Result<()> {
    use std::io::{Read, Write};
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(20))
        // Per read: a stalled connection fails and resumes; a slow one is fine.
        .timeout(std::time::Duration::from_secs(60))
        .user_agent(concat!("ezflt/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("starting the HTTP client")?;
    let mut last: Option<anyhow::Error> = None;
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            let have = part.metadata().map(|m| m.len()).unwrap_or(0);
            crate::shell::note(format_args!(
                "  the connection broke after {have} bytes ({}); resuming (attempt {attempt} of {ATTEMPTS})\n",
                last.as_ref().map(|e| format!("{e:#}")).unwrap_or_default()
            ));
            std::thread::sleep(std::time::Duration::from_millis(250 << attempt));
        }
        let have = part.metadata().map(|m| m.len()).unwrap_or(0);
        let mut req = client.get(url);
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let mut resp = match req.send() {
            Ok(r) => r,
            Err(e) => {
                // A refused connection or an unknown host will not change on retry.
                if e.is_connect() || e.is_builder() {
                    return Err(anyhow::Error::new(e.without_url()).context("no connection"));
                }
                last = Some(e.without_url().into());
                continue;
            }
        };
        let status = resp.status();
        let append = match status.as_u16() {
            206 => true,
            200 => false,
            // The part file is already whole.
            416 if have > 0 => {
                return check(part, sha);
            }
            _ => bail!("HTTP {status}"),
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(part)
            .with_context(|| format!("opening {}", part.display()))?;
        let start = if append { have } else { 0 };
        let bar = bar(resp.content_length().map(|n| n + start), start);
        let mut buf = vec![0u8; 1 << 16];
        // A read error is a broken connection (resume); a write error a full or read-only
        // disk (no retry helps).
        let mut write_err = None;
        let res = loop {
            match resp.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    if let Err(e) = file.write_all(&buf[..n]) {
                        write_err = Some(e);
                        break Ok(());
                    }
                    if let Some(b) = &bar {
                        b.inc(n as u64);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        if let Some(b) = bar {
            crate::shell::detach_bar();
            b.finish_and_clear();
        }
        drop(file);
        if let Some(e) = write_err {
            return Err(anyhow::Error::new(e).context(format!("writing {}", part.display())));
        }
        match res {
            Ok(()) => return check(part, sha),
            Err(e) => last = Some(e.into()),
        }
    }
    Err(last
        .unwrap_or_else(|| anyhow::anyhow!("no attempt ran"))
        .context(format!("gave up after {ATTEMPTS} attempts")))
}

#[cfg(not(feature = "download"))]
fn get_verified(_url: &str, _part: &Path, _sha: &str) -> Result<()> {
    bail!("this build of ezflt has no downloader (Cargo feature `download`)")
}

/// A progress bar on a terminal, none under `--quiet` or when stderr is a pipe.
#[cfg(feature = "download")]
fn bar(total: Option<u64>, start: u64) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if crate::shell::quiet() || !std::io::stderr().is_terminal() {
        return None;
    }
    let b = match total {
        Some(t) => indicatif::ProgressBar::new(t),
        None => indicatif::ProgressBar::no_length(),
    };
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "  {bar:30.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b.set_position(start);
    crate::shell::attach_bar(&b);
    Some(b)
}

/// The sha256 of `part` must be `want`; if not, the file goes (it would only fail again).
#[cfg(feature = "download")]
fn check(part: &Path, want: &str) -> Result<()> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(part).with_context(|| format!("reading {}", part.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", part.display()))?;
    let got: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if !got.eq_ignore_ascii_case(want.trim()) {
        let size = part.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = std::fs::remove_file(part);
        bail!(
            "checksum mismatch: expected sha256 {want}, got {got} ({size} bytes); the \
             download is corrupt or the mirror serves another file, so it was removed"
        );
    }
    Ok(())
}

/// An exclusive lock on a cache folder, released when dropped (or when the process dies).
struct Lock(#[allow(dead_code)] std::fs::File);

impl Lock {
    fn take(dir: &Path) -> Result<Lock> {
        let path = dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            let fd = file.as_raw_fd();
            // SAFETY: flock on a descriptor this function owns; no memory is shared.
            if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                crate::shell::note(format_args!(
                    "Waiting for another ezflt process downloading into {}\n",
                    dir.display()
                ));
                // SAFETY: as above.
                if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
                    bail!(
                        "locking {}: {}",
                        path.display(),
                        std::io::Error::last_os_error()
                    );
                }
            }
        }
        Ok(Lock(file))
    }
}
