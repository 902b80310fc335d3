use clap::Parser;
use tracing_subscriber::EnvFilter;

use trailhound::cli::{self, Cli, LogFormat};

/// Decoding and detection allocate many small buffers on every core; mimalloc serves them
/// faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_t`, mimalloc 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
fn main() {
    // Freed memory is kept for reuse instead of being handed back to the kernel after a second:
    // replay frees and reallocates each chunk's buffers, and the kernel zeroing fresh pages
    // cost a tenth of its time. Memory stays at its peak instead of shrinking between
    // chunks. MIMALLOC_PURGE_DELAY (milliseconds) overrides this.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: no other thread exists yet; the option is a plain integer setting.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    // No transparent huge pages: the kernel zeroes a whole 2 MiB page on its first touch,
    // and on a virtual machine that cost replay of 356k events 1.4-2.4 s of system time,
    // against 0.6 s with ordinary pages for the same memory. TRAILHOUND_HUGE_PAGES=1 keeps
    // the system's setting.
    #[cfg(target_os = "linux")]
    if std::env::var_os("TRAILHOUND_HUGE_PAGES").is_none_or(|v| v != "1") {
        // SAFETY: a process-wide flag, set before any thread is started; failure is harmless.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.log).unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.without_time().init(),
    }
    // A pipe closed by its reader (`trailhound rules list | head`) ends the program quietly,
    // as other command-line tools end, except for the daemon, whose stdout sink reports the
    // failed write as a sink error and keeps its messages.
    #[cfg(unix)]
    if !cli.is_daemon() {
        // SAFETY: restores the default action of one signal before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let code = match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("trailhound: error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
