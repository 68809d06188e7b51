//! Master files (RFC 1035 §5) into a [`Zone`].
//!
//! The entry layer is ours: it tracks files and lines for every diagnostic, handles
//! `$ORIGIN`, `$TTL`, `$INCLUDE` (with loop detection), parentheses, comments, quoted strings
//! and omitted owner, TTL and class. Rdata of the common types (A, AAAA, NS, CNAME, PTR,
//! DNAME, MX, SOA, TXT, SPF, SRV) is converted here, that of the types `domain` does not
//! read and of SVCB/HTTPS by `zone::rdata_text`; every other type goes through NLnet
//! Labs' `domain` crate (`ZoneRecordData::scan`) fed by our tokens; RFC 3597 `\#` rdata is
//! read here for any type.

use std::fmt;
use std::path::{Path, PathBuf};

use domain::base::iana::Rtype;
use domain::base::name::Name as DomainName;
use domain::base::rdata::ComposeRecordData;
use domain::base::scan::{ConvertSymbols, EntrySymbol, Scanner, ScannerError, Symbol, Symbols};
use domain::base::{CharStr, ParseRecordData};
use domain::dep::octseq::{Parser, Str};
use domain::rdata::ZoneRecordData;

use super::{rdata_text, InsertError, Inserted, SrcPos, Zone};
use crate::wire::name::{self, Name, NameError};
use crate::wire::rdata::{self as rd, rtype};

/// Largest TTL (RFC 2181 §8).
pub const MAX_TTL: u64 = 0x7fff_ffff;
/// Deepest `$INCLUDE` nesting.
const MAX_INCLUDE_DEPTH: usize = 16;
/// Stop collecting errors after this many.
const MAX_ERRORS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// A problem found in a zone, with the file and line it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: u32,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{}:{}: {}: {}", self.file.display(), self.line, sev, self.message)
    }
}

/// A zone read from master files, with what was found wrong with it.
#[derive(Debug)]
pub struct Loaded {
    pub zone: Zone,
    /// The files read, in order; `SrcPos::file` indexes this.
    pub files: Vec<PathBuf>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// True if no error was found: the zone may replace a running one.
    pub fn is_servable(&self) -> bool {
        !self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error)
    }

    /// Records a diagnostic at a position in one of the read files.
    pub fn report(&mut self, severity: Severity, at: SrcPos, message: String) {
        let file = self.files.get(at.file as usize).cloned().unwrap_or_default();
        self.diagnostics.push(Diagnostic { severity, file, line: at.line, message });
    }
}

/// The zone apex to use for a file: `--origin`, else a `$ORIGIN` before the first record,
/// else the file name without `.zone`.
pub fn guess_origin(path: &Path, text: &[u8]) -> Option<Name> {
    match origin_directive(text, false) {
        Ok(Some(n)) => Some(n),
        _ => origin_from_file_name(path),
    }
}

/// The first absolute `$ORIGIN` among the directives before the first record, if any;
/// `Err` if `text` is the start of a file (`more`) and ends too soon to tell.
fn origin_directive(text: &[u8], more: bool) -> Result<Option<Name>, ()> {
    let mut tz = Tokenizer::new(text);
    tz.more = more;
    loop {
        let entry = match tz.next_entry() {
            Ok(Some(entry)) => entry,
            Err(TokenError::More) => return Err(()),
            Ok(None) | Err(TokenError::Bad(..)) => return Ok(None),
        };
        let first = entry.tokens[0];
        if entry.leading_space || first.quoted || first.text.first() != Some(&b'$') {
            return Ok(None);
        }
        if first.text.eq_ignore_ascii_case(b"$ORIGIN") {
            return Ok(entry.tokens.get(1).and_then(|t| Name::parse_text(t.text, None).ok()));
        }
    }
}

fn origin_from_file_name(path: &Path) -> Option<Name> {
    let file = path.file_name()?.to_str()?;
    let stem = file.strip_suffix(".zone").unwrap_or(file);
    let stem = stem.strip_suffix('.').unwrap_or(stem);
    Name::parse_text(format!("{stem}.").as_bytes(), None).ok()
}

/// Reads a zone from `path` (and whatever it includes). Only I/O failure of the top file
/// is an `Err`; everything wrong inside the zone is a diagnostic.
pub fn load_file(path: &Path, origin: Option<&Name>) -> std::io::Result<Loaded> {
    let mut loaded = parse_file(path, origin)?;
    super::check::check(&mut loaded);
    Ok(loaded)
}

/// [`load_file`] without the whole-zone checks ([`super::check::check`]): the records and
/// what was found wrong while reading them.
pub fn parse_file(path: &Path, origin: Option<&Name>) -> std::io::Result<Loaded> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len() as usize;
    let mut src = Source::File { file, buf: Vec::new(), more: true, piece: PIECE };
    src.refill(0)?;
    let origin = match origin {
        Some(o) => o.clone(),
        None => loop {
            let (text, more) = src.text();
            match origin_directive(text, more) {
                Ok(Some(n)) => break n,
                Ok(None) => break origin_from_file_name(path).unwrap_or_else(Name::root),
                Err(()) => src.refill(0)?,
            }
        },
    };
    match read_zone(path, src, &origin, size) {
        (_, Some(e)) => Err(e),
        (loaded, None) => Ok(loaded),
    }
}

/// Reads a zone from text already in memory (`path` is used in messages and to resolve
/// `$INCLUDE`).
pub fn load_text(path: &Path, text: &[u8], origin: &Name) -> Loaded {
    // Text in memory cannot fail to be read.
    let (mut loaded, _) = read_zone(path, Source::Text(text), origin, text.len());
    super::check::check(&mut loaded);
    loaded
}

/// Reads a zone: on one thread, or for a large file on two, one reading the text and one
/// building the zone from what it read (the same result either way).
/// `size`: the length of the main file. Also returns the error that stopped reading the
/// main file, if one did.
fn read_zone(path: &Path, src: Source<'_>, origin: &Name, size: usize) -> (Loaded, Option<std::io::Error>) {
    let two = size >= PIPELINE_MIN_SIZE && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    if two {
        read_pipelined(path, src, origin, size)
    } else {
        read_inline(path, src, origin, size)
    }
}

fn read_inline(path: &Path, src: Source<'_>, origin: &Name, size: usize) -> (Loaded, Option<std::io::Error>) {
    let mut r = Reader::new(Loader::new(origin, size));
    r.read_text(path, src, origin.clone(), 0);
    (r.sink.finish(r.files), r.io_error)
}

/// The text of a zone file: all in memory, or read from the file a piece at a time (the
/// pieces hold whole entries; an entry longer than a piece grows the buffer).
enum Source<'t> {
    Text(&'t [u8]),
    File { file: std::fs::File, buf: Vec<u8>, more: bool, piece: usize },
}

/// What is read from a file at a time.
const PIECE: usize = 1 << 20;

impl Source<'_> {
    /// The text at hand, and whether more follows.
    fn text(&self) -> (&[u8], bool) {
        match self {
            Source::Text(t) => (t, false),
            Source::File { buf, more, .. } => (buf, *more),
        }
    }

    /// Drops the first `consumed` octets of the text at hand and reads the next piece after
    /// the rest.
    fn refill(&mut self, consumed: usize) -> std::io::Result<()> {
        if let Source::File { file, buf, more, piece } = self {
            buf.drain(..consumed);
            buf.reserve(*piece);
            let n = std::io::Read::read_to_end(&mut std::io::Read::take(&mut *file, *piece as u64), buf)?;
            *more = n == *piece;
        }
        Ok(())
    }
}

/// Files at least this large are read on two threads.
const PIPELINE_MIN_SIZE: usize = 1 << 20;
/// What the reading thread gathers before handing it over.
const BATCH_SIZE: usize = 128 << 10;

/// Records and diagnostics on their way from the reading thread to the loading one.
#[derive(Default)]
struct Batch {
    /// Per record: [`RECORD`], a header (file u16, line u32, type u16, TTL u32, owner
    /// length u8, rdata length u16, little endian), the owner, the rdata. Per diagnostic:
    /// [`DIAG`], which stands for the next entry of `diags`. Per file read: [`FILE`].
    bytes: Vec<u8>,
    diags: std::collections::VecDeque<(Severity, SrcPos, String)>,
    /// Per run of records with the same owner (ended by another owner, a diagnostic, a file
    /// or the end of the batch), in order: an empty buffer with room for the run's records,
    /// for the loader to use if the run makes a new name. The reading thread allocates (and
    /// first touches) them: building the zone is mostly memory, and this way the two threads
    /// share that work.
    runs: std::collections::VecDeque<Vec<u8>>,
}

const RECORD: u8 = 0;
const DIAG: u8 = 1;
const FILE: u8 = 2;
const RECORD_HEADER: usize = 15;

/// The reading thread's [`Sink`]: fills batches and sends them.
struct BatchSink<'a> {
    batch: Batch,
    send: std::sync::mpsc::SyncSender<Batch>,
    /// Emptied batches coming back.
    recycled: std::sync::mpsc::Receiver<Batch>,
    stop: &'a std::sync::atomic::AtomicBool,
    /// The current run of records.
    run: Option<Run>,
}

/// A run of records with the same owner, as it is being written into a batch.
struct Run {
    /// Where it starts in `Batch::bytes`.
    start: usize,
    /// The octets its records take in a name's buffer (see [`run_room`]).
    room: usize,
    /// The RRset keys seen so far (`zone::rrset_key`: RRSIGs by covered type).
    types: [u32; 16],
    seen: usize,
}

impl BatchSink<'_> {
    /// Ends the current run of records: see [`Batch::runs`].
    fn end_run(&mut self) {
        let Some(run) = self.run.take() else { return };
        // Writing its first octet brings the buffer's memory in: the buffers of a batch lie
        // one after the other, so that is every page they use.
        let mut buf = Vec::with_capacity(run.room);
        buf.push(0);
        buf.clear();
        self.batch.runs.push_back(buf);
    }

    fn flush(&mut self) {
        self.end_run();
        let fresh = self.recycled.try_recv().unwrap_or_else(|_| Batch {
            bytes: Vec::with_capacity(BATCH_SIZE + 1024),
            diags: Default::default(),
            runs: Default::default(),
        });
        let full = std::mem::replace(&mut self.batch, fresh);
        if self.send.send(full).is_err() {
            // The loading side is gone (it panicked): nothing more to do.
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Sink for BatchSink<'_> {
    fn record(&mut self, at: SrcPos, owner: &[u8], t: u16, ttl: u32, rdata: &[u8]) {
        if let Some(run) = &self.run {
            let b = &self.batch.bytes;
            let owner_len = b[run.start + 13] as usize;
            if b[run.start + 1 + RECORD_HEADER..run.start + 1 + RECORD_HEADER + owner_len] != *owner {
                self.end_run();
            }
        }
        let b = &mut self.batch.bytes;
        let run = self.run.get_or_insert(Run { start: b.len(), room: 0, types: [0; 16], seen: 0 });
        run.room += 2 + rdata.len();
        let key = crate::zone::rrset_key(t, rdata);
        if !run.types[..run.seen].contains(&key) {
            run.room += crate::zone::RRSET_HEADER;
            if run.seen < run.types.len() {
                run.types[run.seen] = key;
                run.seen += 1;
            }
        }
        // Owner names are at most 255 octets and rdata at most 65535: both fit their fields.
        let mut h = [0u8; 1 + RECORD_HEADER];
        h[0] = RECORD;
        h[1..3].copy_from_slice(&at.file.to_le_bytes());
        h[3..7].copy_from_slice(&at.line.to_le_bytes());
        h[7..9].copy_from_slice(&t.to_le_bytes());
        h[9..13].copy_from_slice(&ttl.to_le_bytes());
        h[13] = owner.len() as u8;
        h[14..16].copy_from_slice(&(rdata.len() as u16).to_le_bytes());
        b.reserve(h.len() + owner.len() + rdata.len());
        b.extend_from_slice(&h);
        b.extend_from_slice(owner);
        b.extend_from_slice(rdata);
        if b.len() >= BATCH_SIZE {
            self.flush();
        }
    }

    fn diag(&mut self, severity: Severity, at: SrcPos, message: String) {
        self.end_run();
        self.batch.bytes.push(DIAG);
        self.batch.diags.push_back((severity, at, message));
    }

    fn stopped(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn file(&mut self) {
        self.end_run();
        self.batch.bytes.push(FILE);
    }
}

/// The records of a batch from the one at `start` on that have `owner`: where they end, and
/// the octets they take in a name's RRset buffer (each its length and rdata, and a header
/// for each RRset: each type, and each type RRSIGs cover).
fn run_room(b: &[u8], start: usize, owner: &[u8]) -> (usize, usize) {
    let mut pos = start;
    let mut room = 0;
    let mut types = [0u32; 16];
    let mut seen = 0;
    while pos < b.len() && b[pos] == RECORD {
        let h = &b[pos + 1..pos + 1 + RECORD_HEADER];
        let owner_len = h[12] as usize;
        let at = pos + 1 + RECORD_HEADER;
        if b[at..at + owner_len] != *owner {
            break;
        }
        let t = u16::from_le_bytes([h[6], h[7]]);
        let rdata_len = u16::from_le_bytes([h[13], h[14]]) as usize;
        room += 2 + rdata_len;
        let rdata_at = at + owner_len;
        let key = crate::zone::rrset_key(t, &b[rdata_at..rdata_at + rdata_len]);
        if !types[..seen].contains(&key) {
            room += crate::zone::RRSET_HEADER;
            if seen < types.len() {
                types[seen] = key;
                seen += 1;
            }
        }
        pos = at + owner_len + rdata_len;
    }
    (pos, room)
}

impl Loader {
    /// Replays a batch, stopping where a [`Reader`] on one thread would have stopped.
    fn replay(&mut self, batch: &mut Batch) {
        let b = &batch.bytes[..];
        let mut pos = 0;
        // Where the current run of records with the same owner ends.
        let mut run_end = 0;
        let mut made = None;
        while pos < b.len() && !self.stopped() {
            let tag = b[pos];
            pos += 1;
            if tag == DIAG {
                if let Some((severity, at, message)) = batch.diags.pop_front() {
                    self.diag(severity, at, message);
                }
                continue;
            }
            if tag == FILE {
                self.file();
                continue;
            }
            let h = &b[pos..pos + RECORD_HEADER];
            let at =
                SrcPos { file: u16::from_le_bytes([h[0], h[1]]), line: u32::from_le_bytes([h[2], h[3], h[4], h[5]]) };
            let t = u16::from_le_bytes([h[6], h[7]]);
            let ttl = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
            let owner_len = h[12] as usize;
            let rdata_len = u16::from_le_bytes([h[13], h[14]]) as usize;
            let owner_at = pos + RECORD_HEADER;
            let rdata_at = owner_at + owner_len;
            let owner = &b[owner_at..rdata_at];
            // At the start of a run, the room its records take in the name's buffer, and what
            // the reading thread made ready for it.
            let mut room = 0;
            if pos >= run_end {
                (run_end, room) = run_room(b, pos - 1, owner);
                made = batch.runs.pop_front();
            }
            pos = rdata_at + rdata_len;
            self.add_record(at, owner, t, ttl, &b[rdata_at..pos], room, &mut made);
        }
        batch.bytes.clear();
        batch.diags.clear();
        batch.runs.clear();
    }
}

/// [`read_inline`] on two threads: this one builds the zone while another reads the text.
fn read_pipelined(path: &Path, src: Source<'_>, origin: &Name, size: usize) -> (Loaded, Option<std::io::Error>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = AtomicBool::new(false);
    let (send, receive) = std::sync::mpsc::sync_channel::<Batch>(4);
    let (give_back, recycled) = std::sync::mpsc::channel::<Batch>();
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let sink = BatchSink { batch: Batch::default(), send, recycled, stop: &stop, run: None };
            let mut r = Reader::new(sink);
            r.read_text(path, src, origin.clone(), 0);
            r.sink.flush();
            (r.files, r.io_error)
        });
        let mut loader = Loader::new(origin, size);
        for mut batch in receive {
            loader.replay(&mut batch);
            if loader.stopped() {
                stop.store(true, Ordering::Relaxed);
            }
            let _ = give_back.send(batch);
        }
        match reader.join() {
            Ok((files, io_error)) => (loader.finish(files), io_error),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Reads master files entry by entry and hands every record and every problem it finds
/// to a [`Sink`], in file order.
struct Reader<S> {
    sink: S,
    files: Vec<PathBuf>,
    /// Canonical paths of the files being read, for `$INCLUDE` loops.
    stack: Vec<PathBuf>,
    /// The owner of the last record (wire form, case kept); empty before the first.
    owner: Vec<u8>,
    /// Where an owner is read into before it replaces `owner`.
    owner_next: Vec<u8>,
    last_ttl: Option<u32>,
    default_ttl: Option<u32>,
    scratch: Vec<u8>,
    /// What stopped reading the main file, if anything did.
    io_error: Option<std::io::Error>,
}

/// Where a [`Reader`] sends what it reads.
trait Sink {
    /// One record, as read (owner in wire form, case kept; rdata in wire form).
    fn record(&mut self, at: SrcPos, owner: &[u8], t: u16, ttl: u32, rdata: &[u8]);
    /// A problem found while reading.
    fn diag(&mut self, severity: Severity, at: SrcPos, message: String);
    /// True once reading should stop (too many errors).
    fn stopped(&self) -> bool;
    /// A file is about to be read (the main file, then each `$INCLUDE`).
    fn file(&mut self);
}

/// Builds the zone from what a [`Reader`] sends, in order: inserts records (the rules of
/// [`Zone::insert`] give more problems) and collects diagnostics, up to [`MAX_ERRORS`].
struct Loader {
    zone: Zone,
    diagnostics: Vec<(Severity, SrcPos, String)>,
    errors: usize,
    /// Files started before reading stopped.
    files: usize,
}

impl Loader {
    /// A loader for a zone whose main file is `size` octets long.
    fn new(origin: &Name, size: usize) -> Loader {
        // Master files spend 50 to 100 octets per owner name (a few records of 20 to 40
        // octets): room for one name every 48 octets is enough without being wasteful (the
        // node vector's unused capacity is never touched).
        Loader { zone: Zone::with_capacity(origin, size / 48), diagnostics: Vec::new(), errors: 0, files: 0 }
    }

    fn finish(self, mut files: Vec<PathBuf>) -> Loaded {
        // A reader on another thread may have gone on past the point where reading stopped.
        files.truncate(self.files);
        let diagnostics = self
            .diagnostics
            .into_iter()
            .map(|(severity, at, message)| Diagnostic {
                severity,
                file: files[at.file as usize].clone(),
                line: at.line,
                message,
            })
            .collect();
        Loaded { zone: self.zone, files, diagnostics }
    }
}

impl Loader {
    /// [`Sink::record`], making room for `room` octets in the name's buffer first (for the
    /// records that follow with the same owner).
    #[allow(clippy::too_many_arguments)]
    fn add_record(
        &mut self,
        at: SrcPos,
        owner: &[u8],
        t: u16,
        ttl: u32,
        rdata: &[u8],
        room: usize,
        made: &mut Option<Vec<u8>>,
    ) {
        let message = match self.zone.insert_with_room(owner, t, ttl, rdata, at, room, made) {
            Ok(Inserted::Added) | Ok(Inserted::Duplicate) => return,
            Ok(Inserted::TtlNormalised { rrset_ttl }) => {
                let what = match crate::zone::rrsig_covered(rdata).filter(|_| t == rtype::RRSIG) {
                    Some(covered) => format!("RRSIG records covering {}", type_name(covered)),
                    None => format!("{} records", type_name(t)),
                };
                let message = format!(
                    "TTL {ttl} differs from {rrset_ttl} of the other {what} at {} (RFC 2181 §5.2); using {rrset_ttl}",
                    name::Display(owner)
                );
                return self.diag(Severity::Warning, at, message);
            }
            Err(InsertError::OutOfZone { name, origin }) => {
                format!("{name} is outside the zone {origin} (out-of-zone record)")
            }
            Err(other) => other.to_string(),
        };
        self.diag(Severity::Error, at, message);
    }
}

impl Sink for Loader {
    fn record(&mut self, at: SrcPos, owner: &[u8], t: u16, ttl: u32, rdata: &[u8]) {
        self.add_record(at, owner, t, ttl, rdata, 0, &mut None);
    }

    fn diag(&mut self, severity: Severity, at: SrcPos, message: String) {
        if severity == Severity::Error {
            self.errors += 1;
            if self.errors > MAX_ERRORS {
                return;
            }
        }
        self.diagnostics.push((severity, at, message));
    }

    fn stopped(&self) -> bool {
        self.errors > MAX_ERRORS
    }

    fn file(&mut self) {
        self.files += 1;
    }
}

/// One lexical token of an entry.
#[derive(Clone, Copy, Debug)]
pub(super) struct Token<'a> {
    /// Raw text, escapes undecoded, quotes removed.
    pub(super) text: &'a [u8],
    pub(super) quoted: bool,
    /// Follows the previous token with no space between (`alpn="h2,h3"`).
    pub(super) glued: bool,
    pub(super) line: u32,
}

struct Entry<'a> {
    line: u32,
    leading_space: bool,
    tokens: Vec<Token<'a>>,
}

struct Tokenizer<'a> {
    buf: &'a [u8],
    pos: usize,
    line: u32,
    /// `buf` is a piece of the text and more follows it.
    more: bool,
}

/// Why the tokenizer returned no entry.
enum TokenError {
    /// The entry goes on after the piece of text at hand.
    More,
    /// The text is wrong here (line, message); reading cannot go on.
    Bad(u32, String),
}

/// Octet classes for the tokenizer.
const C_PLAIN: u8 = 0;
const C_SPACE: u8 = 1;
const C_NEWLINE: u8 = 2;
const C_COMMENT: u8 = 3;
const C_OPEN: u8 = 4;
const C_CLOSE: u8 = 5;
const C_QUOTE: u8 = 6;
const C_BACKSLASH: u8 = 7;

static CLASS: [u8; 256] = {
    let mut t = [C_PLAIN; 256];
    t[b' ' as usize] = C_SPACE;
    t[b'\t' as usize] = C_SPACE;
    t[b'\r' as usize] = C_SPACE;
    t[b'\n' as usize] = C_NEWLINE;
    t[b';' as usize] = C_COMMENT;
    t[b'(' as usize] = C_OPEN;
    t[b')' as usize] = C_CLOSE;
    t[b'"' as usize] = C_QUOTE;
    t[b'\\' as usize] = C_BACKSLASH;
    t
};

impl<'a> Tokenizer<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Tokenizer { buf, pos: 0, line: 1, more: false }
    }

    /// The next non-empty entry.
    fn next_entry(&mut self) -> Result<Option<Entry<'a>>, TokenError> {
        self.next_entry_in(Vec::new())
    }

    /// Like `next_entry`, reusing `tokens`' allocation.
    fn next_entry_in(&mut self, mut tokens: Vec<Token<'a>>) -> Result<Option<Entry<'a>>, TokenError> {
        tokens.clear();
        let buf = self.buf;
        let mut depth = 0usize;
        let mut open_line = 0;
        let mut start_line = self.line;
        let mut leading_space = self.at_blank();
        loop {
            let Some(&c) = buf.get(self.pos) else {
                if self.more {
                    return Err(TokenError::More);
                }
                if depth > 0 {
                    return Err(TokenError::Bad(
                        open_line,
                        "unbalanced parentheses: '(' is never closed (truncated file?)".into(),
                    ));
                }
                return Ok(if tokens.is_empty() {
                    None
                } else {
                    Some(Entry { line: start_line, leading_space, tokens })
                });
            };
            match CLASS[c as usize] {
                C_SPACE => self.pos += 1,
                C_NEWLINE => {
                    self.pos += 1;
                    self.line += 1;
                    if depth == 0 {
                        if !tokens.is_empty() {
                            return Ok(Some(Entry { line: start_line, leading_space, tokens }));
                        }
                        start_line = self.line;
                        leading_space = self.at_blank();
                    }
                }
                C_COMMENT => match buf[self.pos..].iter().position(|&b| b == b'\n') {
                    Some(k) => self.pos += k,
                    None if self.more => return Err(TokenError::More),
                    None => self.pos = buf.len(),
                },
                C_OPEN => {
                    if depth == 0 {
                        open_line = self.line;
                    }
                    depth += 1;
                    self.pos += 1;
                }
                C_CLOSE => {
                    if depth == 0 {
                        return Err(TokenError::Bad(self.line, "unbalanced parentheses: ')' without '('".into()));
                    }
                    depth -= 1;
                    self.pos += 1;
                }
                C_QUOTE => {
                    let start = self.pos + 1;
                    let mut i = start;
                    loop {
                        match buf.get(i) {
                            None if self.more => return Err(TokenError::More),
                            None | Some(b'\n') => {
                                return Err(TokenError::Bad(self.line, "unterminated quoted string".into()));
                            }
                            Some(b'\\') => i += 2,
                            Some(b'"') => break,
                            Some(_) => i += 1,
                        }
                    }
                    if i > buf.len() {
                        return Err(TokenError::Bad(self.line, "unterminated quoted string".into()));
                    }
                    let glued = self.glued(self.pos, &tokens);
                    tokens.push(Token { text: &buf[start..i], quoted: true, glued, line: self.line });
                    self.pos = i + 1;
                }
                _ => {
                    // An unquoted token runs to a delimiter; a backslash escapes the next octet.
                    let start = self.pos;
                    let mut i = start;
                    while i < buf.len() {
                        match CLASS[buf[i] as usize] {
                            C_PLAIN => i += 1,
                            C_BACKSLASH => i += 2,
                            _ => break,
                        }
                    }
                    if i >= buf.len() && self.more {
                        return Err(TokenError::More);
                    }
                    let i = i.min(buf.len());
                    let glued = self.glued(start, &tokens);
                    tokens.push(Token { text: &buf[start..i], quoted: false, glued, line: self.line });
                    self.pos = i;
                }
            }
        }
    }

    fn glued(&self, start: usize, tokens: &[Token<'_>]) -> bool {
        !tokens.is_empty() && start > 0 && !matches!(self.buf[start - 1], b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')')
    }

    fn at_blank(&self) -> bool {
        matches!(self.buf.get(self.pos), Some(b' ' | b'\t'))
    }
}

/// An error in one entry.
pub(super) struct EntryError {
    pub(super) line: u32,
    pub(super) message: String,
}

pub(super) fn err<T>(line: u32, message: impl Into<String>) -> Result<T, EntryError> {
    Err(EntryError { line, message: message.into() })
}

impl<S: Sink> Reader<S> {
    fn new(sink: S) -> Self {
        Reader {
            sink,
            files: Vec::new(),
            stack: Vec::new(),
            owner: Vec::with_capacity(256),
            owner_next: Vec::with_capacity(256),
            last_ttl: None,
            default_ttl: None,
            scratch: Vec::with_capacity(512),
            io_error: None,
        }
    }

    fn diag(&mut self, severity: Severity, file: u16, line: u32, message: String) {
        self.sink.diag(severity, SrcPos { file, line }, message);
    }

    fn read_text(&mut self, path: &Path, mut src: Source<'_>, mut origin: Name, depth: usize) {
        self.sink.file();
        let file = self.files.len() as u16;
        self.files.push(path.to_path_buf());
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.stack.push(canonical);
        // Where the next entry starts in the text at hand, and its line.
        let (mut start, mut line) = (0, 1);
        'text: loop {
            let (text, more) = src.text();
            let mut tz = Tokenizer { buf: text, pos: start, line, more };
            let mut tokens = Vec::with_capacity(16);
            loop {
                if self.sink.stopped() {
                    break 'text;
                }
                (start, line) = (tz.pos, tz.line);
                let entry = match tz.next_entry_in(std::mem::take(&mut tokens)) {
                    Ok(Some(e)) => e,
                    Ok(None) => break 'text,
                    // The entry goes on in the next piece: read it, then start the entry again.
                    Err(TokenError::More) => break,
                    Err(TokenError::Bad(line, msg)) => {
                        self.diag(Severity::Error, file, line, msg);
                        break 'text;
                    }
                };
                if let Err(e) = self.entry(path, file, &entry, &mut origin, depth) {
                    self.diag(Severity::Error, file, e.line, e.message);
                }
                tokens = entry.tokens;
            }
            if let Err(e) = src.refill(start) {
                self.io_error = Some(e);
                break;
            }
            start = 0;
        }
        self.stack.pop();
    }

    fn entry(
        &mut self,
        path: &Path,
        file: u16,
        e: &Entry<'_>,
        origin: &mut Name,
        depth: usize,
    ) -> Result<(), EntryError> {
        let first = e.tokens[0];
        if !e.leading_space && !first.quoted && first.text.first() == Some(&b'$') {
            return self.directive(path, file, e, origin, depth);
        }
        let mut idx = 0;
        if !e.leading_space {
            idx = 1;
            self.owner_next.clear();
            parse_name_into(first, origin, &mut self.owner_next)?;
            std::mem::swap(&mut self.owner, &mut self.owner_next);
        }
        if self.owner.is_empty() {
            return err(e.line, "record without an owner name and no previous owner");
        }
        // Taken out for the length of the entry (`self` is borrowed mutably below) and put
        // back whatever happens.
        let owner = std::mem::take(&mut self.owner);
        let result = self.record(file, e, idx, &owner, origin);
        self.owner = owner;
        result
    }

    fn record(
        &mut self,
        file: u16,
        e: &Entry<'_>,
        mut idx: usize,
        owner: &[u8],
        origin: &Name,
    ) -> Result<(), EntryError> {
        let mut ttl = None;
        let mut class_seen = false;
        for _ in 0..2 {
            let Some(t) = e.tokens.get(idx) else { break };
            if t.quoted {
                break;
            }
            if !class_seen && is_class(t.text) {
                if !t.text.eq_ignore_ascii_case(b"IN") && !t.text.eq_ignore_ascii_case(b"CLASS1") {
                    return err(t.line, format!("class {} is not supported (only IN)", text(t.text)));
                }
                class_seen = true;
                idx += 1;
            } else if ttl.is_none() && t.text.first().is_some_and(u8::is_ascii_digit) {
                ttl = Some(parse_ttl(*t)?);
                idx += 1;
            } else {
                break;
            }
        }
        let Some(type_tok) = e.tokens.get(idx) else {
            return err(e.line, "record has no type");
        };
        let t = parse_type(*type_tok)?;
        let ttl = match ttl {
            Some(v) => {
                self.last_ttl = Some(v);
                v
            }
            None => match self.default_ttl.or(self.last_ttl) {
                Some(v) => v,
                None => return err(e.line, "no TTL given and no $TTL before this record"),
            },
        };
        // One rdata buffer for the whole file.
        let mut rdata = std::mem::take(&mut self.scratch);
        rdata.clear();
        let result = rdata_from_tokens(t, &e.tokens[idx + 1..], origin, type_tok.line, &mut rdata);
        if result.is_ok() {
            self.sink.record(SrcPos { file, line: e.line }, owner, t, ttl, &rdata);
        }
        self.scratch = rdata;
        result
    }

    fn directive(
        &mut self,
        path: &Path,
        file: u16,
        e: &Entry<'_>,
        origin: &mut Name,
        depth: usize,
    ) -> Result<(), EntryError> {
        let d = e.tokens[0].text.to_ascii_uppercase();
        let args = &e.tokens[1..];
        match &d[..] {
            b"$ORIGIN" => {
                let [n] = args else { return err(e.line, "$ORIGIN takes one domain name") };
                *origin = parse_name(*n, origin)?;
                Ok(())
            }
            b"$TTL" => {
                let [t] = args else { return err(e.line, "$TTL takes one TTL value") };
                self.default_ttl = Some(parse_ttl(*t)?);
                Ok(())
            }
            b"$INCLUDE" => {
                let (file_tok, new_origin) = match args {
                    [f] => (f, origin.clone()),
                    [f, o] => (f, parse_name(*o, origin)?),
                    _ => return err(e.line, "$INCLUDE takes a file name and an optional origin"),
                };
                let rel = decode_text(file_tok.text).map_err(|m| EntryError { line: e.line, message: m })?;
                let rel = PathBuf::from(String::from_utf8_lossy(&rel).into_owned());
                let target = if rel.is_absolute() { rel } else { path.parent().unwrap_or(Path::new(".")).join(rel) };
                let canonical = std::fs::canonicalize(&target).map_err(|io| EntryError {
                    line: e.line,
                    message: format!("$INCLUDE {}: {io}", target.display()),
                })?;
                if self.stack.contains(&canonical) {
                    return err(e.line, format!("$INCLUDE loop: {} is already being read", target.display()));
                }
                if depth + 1 > MAX_INCLUDE_DEPTH {
                    return err(e.line, format!("$INCLUDE nested deeper than {MAX_INCLUDE_DEPTH}"));
                }
                let text = std::fs::read(&target).map_err(|io| EntryError {
                    line: e.line,
                    message: format!("$INCLUDE {}: {io}", target.display()),
                })?;
                // RFC 1035 §5.1: the included file starts with the given origin, and the
                // includer's origin is back in force afterwards; owner carries on.
                self.read_text(&target, Source::Text(&text), new_origin, depth + 1);
                let _ = file;
                Ok(())
            }
            _ => err(e.line, format!("unknown or unsupported directive {}", text(e.tokens[0].text))),
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn name_err(t: Token<'_>, e: NameError) -> EntryError {
    EntryError { line: t.line, message: format!("bad domain name '{}': {e}", text(t.text)) }
}

fn parse_name(t: Token<'_>, origin: &Name) -> Result<Name, EntryError> {
    Name::parse_text(t.text, Some(origin)).map_err(|e| name_err(t, e))
}

/// Appends the wire form of a name token to `out`.
pub(super) fn parse_name_into(t: Token<'_>, origin: &Name, out: &mut Vec<u8>) -> Result<(), EntryError> {
    name::parse_text_into(t.text, Some(origin.as_wire()), out).map_err(|e| name_err(t, e))
}

fn is_class(t: &[u8]) -> bool {
    if t.len() == 2 {
        return [b"IN", b"CH", b"CS", b"HS"].iter().any(|c| t.eq_ignore_ascii_case(*c));
    }
    t.len() > 5 && t[..5].eq_ignore_ascii_case(b"CLASS") && t[5..].iter().all(u8::is_ascii_digit)
}

/// A TTL: seconds, or BIND's units (`1h30m`, `2W`). At most 2^31-1 (RFC 2181 §8).
fn parse_ttl(t: Token<'_>) -> Result<u32, EntryError> {
    let v = parse_duration(t.text)
        .ok_or_else(|| EntryError { line: t.line, message: format!("bad TTL '{}'", text(t.text)) })?;
    if v > MAX_TTL {
        return err(t.line, format!("TTL {v} is over the maximum 2147483647 (RFC 2181 §8)"));
    }
    Ok(v as u32)
}

fn parse_duration(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut cur: u64 = 0;
    let mut digits = false;
    let mut units = false;
    for &c in s {
        if c.is_ascii_digit() {
            cur = cur.checked_mul(10)?.checked_add((c - b'0') as u64)?;
            digits = true;
            if cur > u32::MAX as u64 * 2 {
                return Some(cur);
            }
        } else {
            let mul = match c.to_ascii_lowercase() {
                b's' => 1,
                b'm' => 60,
                b'h' => 3600,
                b'd' => 86400,
                b'w' => 604800,
                _ => return None,
            };
            if !digits {
                return None;
            }
            total = total.checked_add(cur.checked_mul(mul)?)?;
            cur = 0;
            digits = false;
            units = true;
        }
    }
    if digits {
        if units {
            // "1h30" — trailing bare number counts as seconds, as BIND does.
        }
        total = total.checked_add(cur)?;
    }
    Some(total)
}

fn parse_u32_field(t: Token<'_>, what: &str, duration: bool) -> Result<u32, EntryError> {
    let v = if duration {
        parse_duration(t.text)
    } else if t.text.iter().all(u8::is_ascii_digit) {
        std::str::from_utf8(t.text).ok().and_then(|s| s.parse::<u64>().ok())
    } else {
        None
    };
    match v {
        Some(v) if v <= u32::MAX as u64 => Ok(v as u32),
        _ => err(t.line, format!("bad {what} '{}'", text(t.text))),
    }
}

fn parse_u16_field(t: Token<'_>, what: &str) -> Result<u16, EntryError> {
    match std::str::from_utf8(t.text).ok().and_then(|s| s.parse::<u16>().ok()) {
        Some(v) if t.text.iter().all(u8::is_ascii_digit) => Ok(v),
        _ => err(t.line, format!("bad {what} '{}' (0-65535)", text(t.text))),
    }
}

/// The type in a record: a mnemonic or `TYPEnnn`.
pub(super) fn parse_type(t: Token<'_>) -> Result<u16, EntryError> {
    // The types of nearly every record, without allocating.
    const COMMON: [(&[u8], u16); 9] = [
        (b"A", rtype::A),
        (b"AAAA", rtype::AAAA),
        (b"NS", rtype::NS),
        (b"CNAME", rtype::CNAME),
        (b"MX", rtype::MX),
        (b"TXT", rtype::TXT),
        (b"SOA", rtype::SOA),
        (b"PTR", rtype::PTR),
        (b"SRV", rtype::SRV),
    ];
    if let Some(&(_, v)) = COMMON.iter().find(|(m, _)| t.text.eq_ignore_ascii_case(m)) {
        return Ok(v);
    }
    let s = std::str::from_utf8(t.text).unwrap_or("");
    let u = s.to_ascii_uppercase();
    if let Some(num) = u.strip_prefix("TYPE") {
        if let Ok(v) = num.parse::<u16>() {
            if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) {
                return Ok(v);
            }
        }
    }
    if u == "SPF" {
        return Ok(rtype::SPF);
    }
    match u.parse::<Rtype>() {
        Ok(r) if !u.starts_with("TYPE") => Ok(r.to_int()),
        _ => err(t.line, format!("unknown record type '{s}'")),
    }
}

/// The text name of a type: its mnemonic or `TYPEnnn`.
pub fn type_name(t: u16) -> String {
    if t == rtype::SPF {
        return "SPF".into();
    }
    Rtype::from_int(t).to_string()
}

/// Decodes escapes in a token into octets.
fn decode_text(s: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    decode_text_into(s, &mut out)?;
    Ok(out)
}

/// Decodes escapes in a token, appending the octets to `out`.
pub(super) fn decode_text_into(s: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let mut i = 0;
    while i < s.len() {
        let run = i;
        while i < s.len() && s[i] != b'\\' {
            i += 1;
        }
        out.extend_from_slice(&s[run..i]);
        if i < s.len() {
            let (b, used) = name::unescape(&s[i..]).map_err(|_| format!("bad escape sequence in '{}'", text(s)))?;
            out.push(b);
            i += used;
        }
    }
    Ok(())
}

pub(super) fn push_charstr(out: &mut Vec<u8>, t: Token<'_>) -> Result<(), EntryError> {
    let len_at = out.len();
    out.push(0);
    decode_text_into(t.text, out).map_err(|m| EntryError { line: t.line, message: m })?;
    let len = out.len() - len_at - 1;
    if len > 255 {
        return err(t.line, format!("character string of {len} octets (at most 255)"));
    }
    out[len_at] = len as u8;
    Ok(())
}

/// A dotted-quad IPv4 address, exactly as `Ipv4Addr::from_str` reads it (four decimal
/// octets of at most three digits, no leading zeros), without the UTF-8 check and the
/// general parser.
fn parse_ipv4(s: &[u8]) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut i = 0;
    for (k, octet) in out.iter_mut().enumerate() {
        if k > 0 {
            if s.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut v = 0u32;
        while i < s.len() && s[i].is_ascii_digit() && i - start < 3 {
            v = v * 10 + (s[i] - b'0') as u32;
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || v > 255 || (digits > 1 && s[start] == b'0') {
            return None;
        }
        *octet = v as u8;
    }
    (i == s.len()).then_some(out)
}

/// The usual forms of an IPv6 address (hexadecimal groups, at most one `::`), quickly; None
/// for anything else, which then goes to `Ipv6Addr::from_str` (embedded IPv4, errors).
/// Accepts only what `Ipv6Addr::from_str` accepts, with the same value.
fn parse_ipv6_plain(s: &[u8]) -> Option<[u8; 16]> {
    let mut groups = [0u16; 8];
    let mut n = 0;
    let mut gap = None;
    let mut i = 0;
    if s.starts_with(b"::") {
        gap = Some(0);
        i = 2;
    }
    while i < s.len() {
        let start = i;
        let mut v = 0u16;
        while i < s.len() && i - start < 4 {
            let d = match s[i] {
                c @ b'0'..=b'9' => c - b'0',
                c @ b'a'..=b'f' => c - b'a' + 10,
                c @ b'A'..=b'F' => c - b'A' + 10,
                _ => break,
            };
            v = v << 4 | d as u16;
            i += 1;
        }
        if i == start || n == 8 {
            return None;
        }
        groups[n] = v;
        n += 1;
        if i == s.len() {
            break;
        }
        if s[i] != b':' {
            return None;
        }
        i += 1;
        if s.get(i) == Some(&b':') {
            if gap.is_some() {
                return None;
            }
            gap = Some(n);
            i += 1;
        } else if i == s.len() {
            return None;
        }
    }
    match gap {
        None if n == 8 => {}
        Some(g) if n <= 7 => {
            let tail = n - g;
            groups.copy_within(g..n, 8 - tail);
            groups[g..8 - tail].fill(0);
        }
        _ => return None,
    }
    let mut out = [0u8; 16];
    for (k, g) in groups.iter().enumerate() {
        out[2 * k..2 * k + 2].copy_from_slice(&g.to_be_bytes());
    }
    Some(out)
}

/// Presentation rdata → uncompressed wire rdata.
fn rdata_from_tokens(
    t: u16,
    toks: &[Token<'_>],
    origin: &Name,
    line: u32,
    out: &mut Vec<u8>,
) -> Result<(), EntryError> {
    if let Some(first) = toks.first() {
        if !first.quoted && first.text == b"\\#" {
            out.extend_from_slice(&generic_rdata(t, &toks[1..], line)?);
            return Ok(());
        }
    }
    let need = |n: usize| -> Result<(), EntryError> {
        if toks.len() != n {
            return err(line, format!("{} takes {n} rdata fields, found {}", type_name(t), toks.len()));
        }
        Ok(())
    };
    match t {
        rtype::A => {
            need(1)?;
            let a = parse_ipv4(toks[0].text)
                .ok_or_else(|| EntryError { line, message: format!("bad IPv4 address '{}'", text(toks[0].text)) })?;
            out.extend_from_slice(&a);
        }
        rtype::AAAA => {
            need(1)?;
            let a = parse_ipv6_plain(toks[0].text)
                .or_else(|| {
                    let a: std::net::Ipv6Addr = std::str::from_utf8(toks[0].text).ok()?.parse().ok()?;
                    Some(a.octets())
                })
                .ok_or_else(|| EntryError { line, message: format!("bad IPv6 address '{}'", text(toks[0].text)) })?;
            out.extend_from_slice(&a);
        }
        rtype::NS | rtype::CNAME | rtype::PTR | rtype::DNAME => {
            need(1)?;
            parse_name_into(toks[0], origin, out)?;
        }
        rtype::MX => {
            need(2)?;
            out.extend_from_slice(&parse_u16_field(toks[0], "MX preference")?.to_be_bytes());
            parse_name_into(toks[1], origin, out)?;
        }
        rtype::SRV => {
            need(4)?;
            for (tok, what) in toks[..3].iter().zip(["SRV priority", "SRV weight", "SRV port"]) {
                out.extend_from_slice(&parse_u16_field(*tok, what)?.to_be_bytes());
            }
            parse_name_into(toks[3], origin, out)?;
        }
        rtype::SOA => {
            need(7)?;
            parse_name_into(toks[0], origin, out)?;
            parse_name_into(toks[1], origin, out)?;
            out.extend_from_slice(&parse_u32_field(toks[2], "SOA serial", false)?.to_be_bytes());
            for (tok, what) in toks[3..].iter().zip(["SOA refresh", "SOA retry", "SOA expire", "SOA minimum"]) {
                out.extend_from_slice(&parse_u32_field(*tok, what, true)?.to_be_bytes());
            }
        }
        rtype::TXT | rtype::SPF => {
            if toks.is_empty() {
                return err(line, format!("{} needs at least one character string", type_name(t)));
            }
            for tok in toks {
                push_charstr(out, *tok)?;
            }
        }
        rtype::SVCB | rtype::HTTPS => rdata_text::parse_svcb(t, toks, origin, line, out)?,
        t if rdata_text::knows(t) => rdata_text::parse(t, toks, origin, line, out)?,
        _ => {
            let tname = type_name(t);
            let rtype = Rtype::from_int(t);
            let mut sc = TokenScanner { toks, pos: 0, origin };
            let data = ZoneRecordData::<Vec<u8>, DomainName<Vec<u8>>>::scan(rtype, &mut sc)
                .map_err(|e| EntryError { line, message: format!("bad {tname} rdata: {e}") })?;
            if sc.pos != toks.len() {
                return err(
                    toks[sc.pos].line,
                    format!("trailing data in {tname} rdata: '{}'", text(toks[sc.pos].text)),
                );
            }
            if let ZoneRecordData::Unknown(_) = data {
                return err(line, format!("type {tname} needs its rdata in RFC 3597 form (\\# LENGTH HEX)"));
            }
            data.compose_rdata(out).map_err(|_| EntryError { line, message: "rdata too long".into() })?;
        }
    }
    if out.len() > 65535 {
        return err(line, "rdata longer than 65535 octets");
    }
    Ok(())
}

/// RFC 3597 §5: `\# LENGTH HEX...`.
fn generic_rdata(t: u16, toks: &[Token<'_>], line: u32) -> Result<Vec<u8>, EntryError> {
    let Some(len_tok) = toks.first() else { return err(line, "\\# needs a length") };
    let len: usize = std::str::from_utf8(len_tok.text)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&l: &usize| l <= 65535)
        .ok_or_else(|| EntryError { line, message: format!("bad RFC 3597 length '{}'", text(len_tok.text)) })?;
    let mut hex = Vec::new();
    for tok in &toks[1..] {
        hex.extend_from_slice(tok.text);
    }
    if hex.len() % 2 != 0 {
        return err(line, "RFC 3597 hex data has an odd number of digits");
    }
    let mut out = Vec::with_capacity(hex.len() / 2);
    for pair in hex.chunks(2) {
        let s = std::str::from_utf8(pair).unwrap_or("zz");
        let b = u8::from_str_radix(s, 16)
            .map_err(|_| EntryError { line, message: format!("bad hex digits '{s}' in RFC 3597 data") })?;
        out.push(b);
    }
    if out.len() != len {
        return err(line, format!("RFC 3597 length {len} does not match the {} octets given", out.len()));
    }
    validate_wire_rdata(t, &out).map_err(|m| EntryError { line, message: m })?;
    Ok(out)
}

/// Checks that wire rdata of a known type is well formed.
pub fn validate_wire_rdata(t: u16, data: &[u8]) -> Result<(), String> {
    let tname = type_name(t);
    match t {
        rtype::A if data.len() != 4 => return Err(format!("{tname} rdata must be 4 octets, not {}", data.len())),
        rtype::AAAA if data.len() != 16 => return Err(format!("{tname} rdata must be 16 octets, not {}", data.len())),
        rtype::TXT | rtype::SPF => {
            let mut i = 0;
            while i < data.len() {
                i += 1 + data[i] as usize;
            }
            if i != data.len() || data.is_empty() {
                return Err(format!("{tname} rdata is not a sequence of character strings"));
            }
        }
        _ => {}
    }
    rd::names_in(t, data).map_err(|e| format!("bad {tname} rdata: {e}"))?;
    if rdata_text::knows(t) {
        return rdata_text::validate(t, data);
    }
    if t == rtype::SVCB || t == rtype::HTTPS {
        rdata_text::validate_svcb(data).map_err(|e| format!("bad {tname} rdata: {e}"))?;
    }
    let mut parser = Parser::from_ref(data);
    match ZoneRecordData::<&[u8], domain::base::ParsedName<&[u8]>>::parse_rdata(Rtype::from_int(t), &mut parser) {
        Ok(_) if parser.remaining() == 0 => Ok(()),
        Ok(_) => Err(format!("bad {tname} rdata: trailing octets")),
        Err(e) => Err(format!("bad {tname} rdata: {e}")),
    }
}

/// Feeds our tokens to `domain`'s record-data scanners, completing relative names with the
/// current origin.
struct TokenScanner<'t, 'a> {
    toks: &'t [Token<'a>],
    pos: usize,
    origin: &'t Name,
}

impl TokenScanner<'_, '_> {
    fn next_str(&mut self) -> Result<&str, std::io::Error> {
        let t = self.toks.get(self.pos).ok_or_else(std::io::Error::end_of_entry)?;
        self.pos += 1;
        std::str::from_utf8(t.text).map_err(|_| std::io::Error::custom("text is not UTF-8"))
    }

    fn symbols(&mut self) -> Result<Vec<Symbol>, std::io::Error> {
        let s = self.next_str()?;
        let mut out = Vec::with_capacity(s.len());
        let mut it = Symbols::new(s.chars());
        for sym in &mut it {
            out.push(sym);
        }
        it.ok().map_err(|_| std::io::Error::custom("bad escape sequence"))?;
        Ok(out)
    }
}

impl Scanner for TokenScanner<'_, '_> {
    type Octets = Vec<u8>;
    type OctetsBuilder = Vec<u8>;
    type Name = DomainName<Vec<u8>>;
    type Error = std::io::Error;

    fn has_space(&self) -> bool {
        false
    }

    fn continues(&mut self) -> bool {
        self.pos < self.toks.len()
    }

    fn scan_symbols<F>(&mut self, mut op: F) -> Result<(), Self::Error>
    where
        F: FnMut(Symbol) -> Result<(), Self::Error>,
    {
        for sym in self.symbols()? {
            op(sym)?;
        }
        Ok(())
    }

    fn scan_entry_symbols<F>(&mut self, mut op: F) -> Result<(), Self::Error>
    where
        F: FnMut(EntrySymbol) -> Result<(), Self::Error>,
    {
        while self.continues() {
            for sym in self.symbols()? {
                op(sym.into())?;
            }
            op(EntrySymbol::EndOfToken)?;
        }
        Ok(())
    }

    fn convert_token<C: ConvertSymbols<Symbol, Self::Error>>(
        &mut self,
        mut convert: C,
    ) -> Result<Vec<u8>, Self::Error> {
        let mut out = Vec::new();
        for sym in self.symbols()? {
            if let Some(d) = convert.process_symbol(sym)? {
                out.extend_from_slice(d);
            }
        }
        if let Some(d) = convert.process_tail()? {
            out.extend_from_slice(d);
        }
        Ok(out)
    }

    fn convert_entry<C: ConvertSymbols<EntrySymbol, Self::Error>>(
        &mut self,
        mut convert: C,
    ) -> Result<Vec<u8>, Self::Error> {
        let mut out = Vec::new();
        while self.continues() {
            for sym in self.symbols()? {
                if let Some(d) = convert.process_symbol(sym.into())? {
                    out.extend_from_slice(d);
                }
            }
        }
        if let Some(d) = convert.process_tail()? {
            out.extend_from_slice(d);
        }
        Ok(out)
    }

    fn scan_octets(&mut self) -> Result<Vec<u8>, Self::Error> {
        self.symbols()?.into_iter().map(|s| s.into_octet().map_err(|_| std::io::Error::custom("bad symbol"))).collect()
    }

    fn scan_svcb_octets(&mut self) -> Result<Vec<u8>, Self::Error> {
        // `key=value`, where a quoted value directly after `=` is part of the same item.
        let mut out = self.scan_octets()?;
        while self.toks.get(self.pos).is_some_and(|t| t.glued && t.quoted) {
            out.extend(self.scan_octets()?);
        }
        Ok(out)
    }

    fn scan_ascii_str<F, T>(&mut self, op: F) -> Result<T, Self::Error>
    where
        F: FnOnce(&str) -> Result<T, Self::Error>,
    {
        let s = self.scan_string()?;
        if !s.is_ascii() {
            return Err(std::io::Error::custom("non-ASCII characters"));
        }
        op(&s)
    }

    fn scan_name(&mut self) -> Result<Self::Name, Self::Error> {
        let t = *self.toks.get(self.pos).ok_or_else(std::io::Error::end_of_entry)?;
        self.pos += 1;
        let n =
            Name::parse_text(t.text, Some(self.origin)).map_err(|e| std::io::Error::other(format!("bad name: {e}")))?;
        DomainName::from_octets(n.as_wire().to_vec()).map_err(|_| std::io::Error::custom("bad name"))
    }

    fn scan_charstr(&mut self) -> Result<CharStr<Vec<u8>>, Self::Error> {
        let v = self.scan_octets()?;
        CharStr::from_octets(v).map_err(|_| std::io::Error::custom("character string longer than 255 octets"))
    }

    fn scan_string(&mut self) -> Result<Str<Vec<u8>>, Self::Error> {
        let mut s = String::new();
        for sym in self.symbols()? {
            s.push(sym.into_char().map_err(|_| std::io::Error::custom("bad symbol"))?);
        }
        Str::from_utf8(s.into_bytes()).map_err(|_| std::io::Error::custom("text is not UTF-8"))
    }

    fn scan_charstr_entry(&mut self) -> Result<Vec<u8>, Self::Error> {
        let mut out = Vec::new();
        while self.continues() {
            let v = self.scan_octets()?;
            if v.len() > 255 {
                return Err(std::io::Error::custom("character string longer than 255 octets"));
            }
            out.push(v.len() as u8);
            out.extend_from_slice(&v);
        }
        Ok(out)
    }

    fn scan_opt_unknown_marker(&mut self) -> Result<bool, Self::Error> {
        Ok(self.toks.get(self.pos).is_some_and(|t| !t.quoted && t.text == b"\\#"))
    }

    fn octets_builder(&mut self) -> Result<Vec<u8>, Self::Error> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(s: &str) -> Loaded {
        let origin = Name::parse_text(b"example.com.", None).unwrap();
        load_text(Path::new("t.zone"), s.as_bytes(), &origin)
    }

    const HEAD: &str = "$TTL 3600\n@ IN SOA ns1 hostmaster ( 2024010101 ; serial\n  7200 900 1209600 300 )\n  NS ns1\nns1 A 192.0.2.1\n";

    #[test]
    fn basic_zone() {
        let l = load(&format!("{HEAD}www 300 IN A 192.0.2.2\n     AAAA 2001:db8::2\nmail MX 10 mx.example.net.\ntxt TXT \"a b\" c\\\"d \"\\065\"\n"));
        assert!(l.is_servable(), "{:?}", l.diagnostics);
        let z = &l.zone;
        assert_eq!(z.serial(), Some(2024010101));
        let www = Name::parse_text(b"www.example.com.", None).unwrap();
        assert_eq!(z.rrset(&www, rtype::A).unwrap().ttl, 300);
        assert_eq!(z.rrset(&www, rtype::AAAA).unwrap().ttl, 3600);
        let txt = Name::parse_text(b"txt.example.com.", None).unwrap();
        assert_eq!(&z.rrset(&txt, rtype::TXT).unwrap().rdata.first().unwrap(), b"\x03a b\x03c\"d\x01A");
    }

    #[test]
    fn errors_have_lines() {
        let l = load(&format!("{HEAD}bad A 192.0.2\nx FOO 1\ny 2147483648 A 192.0.2.1\nz TYPE65400 \\# 2 0a\n"));
        let msgs: Vec<String> = l.errors().map(|d| d.to_string()).collect();
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert!(msgs[0].starts_with("t.zone:6: error: bad IPv4"), "{msgs:?}");
        assert!(msgs[1].contains(":7: error: unknown record type 'FOO'"), "{msgs:?}");
        assert!(msgs[2].contains(":8: error: TTL 2147483648"), "{msgs:?}");
        assert!(msgs[3].contains(":9: error: RFC 3597 length 2"), "{msgs:?}");
    }

    #[test]
    fn unbalanced() {
        let l = load(&format!("{HEAD}www A (\n192.0.2.1\n"));
        let e: Vec<_> = l.errors().collect();
        assert_eq!(e[0].line, 6);
        assert!(e[0].message.contains("never closed"));
    }

    #[test]
    fn generic_and_domain_types() {
        let l = load(&format!(
            "{HEAD}u TYPE65400 \\# 4 0a000001\nk A \\# 4 c0000201\nc CAA 0 issue \"ca.example.net\"\n\
             s HTTPS 1 . alpn=h2,h3 port=8443 ipv4hint=192.0.2.1\nn NAPTR 100 10 \"u\" \"E2U+sip\" \"!^.*$!sip:info@example.com!\" .\n"
        ));
        assert!(l.is_servable(), "{:?}", l.diagnostics);
        let k = Name::parse_text(b"k.example.com.", None).unwrap();
        assert_eq!(&l.zone.rrset(&k, rtype::A).unwrap().rdata.first().unwrap(), &[192, 0, 2, 1]);
    }

    /// Reads `text` on one thread and on two; both must give the same zone and diagnostics.
    fn same_both_ways(path: &Path, text: &[u8], origin: &Name) -> Loaded {
        let one = read_inline(path, Source::Text(text), origin, text.len()).0;
        let two = read_pipelined(path, Source::Text(text), origin, text.len()).0;
        assert_eq!(one.diagnostics, two.diagnostics);
        assert_eq!(one.files, two.files);
        assert_eq!(one.zone.records_canonical(), two.zone.records_canonical());
        assert_eq!(one.zone.node_count(), two.zone.node_count());
        two
    }

    /// Reads `text` from a file in pieces of `piece` octets; must match reading it whole.
    fn same_in_pieces(dir: &Path, text: &str, piece: usize) {
        let origin = Name::parse_text(b"example.com.", None).unwrap();
        let path = dir.join("pieces.zone");
        std::fs::write(&path, text).unwrap();
        let whole = read_inline(&path, Source::Text(text.as_bytes()), &origin, text.len()).0;
        let file = std::fs::File::open(&path).unwrap();
        let mut src = Source::File { file, buf: Vec::new(), more: true, piece };
        src.refill(0).unwrap();
        let (pieces, error) = read_inline(&path, src, &origin, text.len());
        assert!(error.is_none());
        assert_eq!(whole.diagnostics, pieces.diagnostics, "piece {piece}");
        assert_eq!(whole.files, pieces.files);
        assert_eq!(whole.zone.records_canonical(), pieces.zone.records_canonical(), "piece {piece}");
    }

    #[test]
    fn files_read_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inc.zone"), "inc A 192.0.2.9\n").unwrap();
        let body = format!(
            "{HEAD}; a comment ( with \"quotes\"\nwww 300 IN A 192.0.2.2\n     AAAA 2001:db8::2 ; trailing\n\
             txt TXT \"a b\" c\\\"d \"\\065\" ( \"more\"\n  \"lines\" )\n$INCLUDE inc.zone\nesc\\.aped A 192.0.2.3\n\
             bad A 192.0.2\ns SVCB 1 . alpn=\"h2,h3\" port=8443\n\n\n  ; blank\nlast A 192.0.2.4"
        );
        for piece in [1, 2, 3, 5, 7, 16, 64, 1000] {
            same_in_pieces(dir.path(), &body, piece);
            // Cut off inside an entry, a quoted string and parentheses.
            for cut in [body.len() - 3, body.find("\"more").unwrap() + 3, body.find("( \"more").unwrap() + 1] {
                same_in_pieces(dir.path(), &body[..cut], piece);
            }
        }
        // No $ORIGIN: the apex from the file name; and from a directive that ends the piece.
        let path = dir.path().join("example.org.zone");
        std::fs::write(&path, format!("{HEAD}www A 192.0.2.1\n")).unwrap();
        assert_eq!(parse_file(&path, None).unwrap().zone.origin().to_string(), "example.org.");
        let long = format!("{}$ORIGIN example.net.\n{HEAD}", "; padding\n".repeat(200_000));
        std::fs::write(&path, long).unwrap();
        assert_eq!(parse_file(&path, None).unwrap().zone.origin().to_string(), "example.net.");
    }

    #[test]
    fn two_threads_read_the_same() {
        let origin = Name::parse_text(b"example.com.", None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inc.zone"), "inc A 192.0.2.9\ninc 60 A 192.0.2.10\nbad A 1.2.3\n").unwrap();
        let mut text = String::from(HEAD);
        for i in 0..3000 {
            match i % 7 {
                0 => text.push_str(&format!("h{i} A 192.0.2.{}\n 600 A 192.0.2.1\n", i % 250)),
                1 => text.push_str(&format!("h{i}.example.net. A 192.0.2.1\n")),
                2 => text.push_str(&format!("h{i} A 192.0.2.300\n")),
                3 => text.push_str("$INCLUDE inc.zone\n"),
                4 => text.push_str(&format!("c{i} CNAME a\nc{i} CNAME b\n")),
                5 => text.push_str(&format!("m{i} MX 10 mail{i}\n TXT \"x\" y\n")),
                _ => text.push_str(&format!("a{i} AAAA 2001:db8::{i:x}\n")),
            }
        }
        let path = dir.path().join("main.zone");
        // Far more than MAX_ERRORS: both stop at the same place.
        let l = same_both_ways(&path, text.as_bytes(), &origin);
        assert_eq!(l.errors().count(), MAX_ERRORS);
        // Fewer errors: everything is read.
        let few: String = text
            .lines()
            .filter(|l| !l.contains(".300") && !l.contains("example.net"))
            .take(400)
            .collect::<Vec<_>>()
            .join("\n");
        let l = same_both_ways(&path, few.as_bytes(), &origin);
        assert!(l.errors().count() > 10 && l.errors().count() < MAX_ERRORS, "{}", l.errors().count());
        assert!(l.diagnostics.iter().any(|d| d.severity == Severity::Warning));
        assert!(l.diagnostics.iter().any(|d| d.file.ends_with("inc.zone")));
        // A tokenizer error in the main file ends it.
        let cut = format!("{few}\nx TXT \"open\n");
        same_both_ways(&path, cut.as_bytes(), &origin);
    }

    #[test]
    fn address_parsers_agree_with_std() {
        let mut cases: Vec<String> = [
            "192.0.2.1",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            "1.2.3.04",
            "1234.1.1.1",
            "a.b.c.d",
            "1.2.3.4 ",
            "",
            ".",
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8::",
            "::1:2:3:4:5:6:7:8",
            "1::2::3",
            ":1::2",
            "1:::2",
            ":::",
            "1:",
            ":1",
            "12345::",
            "2001:DB8::a:B:c",
            "0000:0000::0001",
            "::ffff:192.0.2.1",
            "1:2:3:4:5:6:192.0.2.1",
            "fe80::1%eth0",
            "g::1",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Random strings over the characters that matter.
        let alphabet = b"0123456789abcdefABCDEF:.x";
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            let mut y = x;
            let s: String = (0..len)
                .map(|_| {
                    y = y.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    alphabet[(y >> 59) as usize % alphabet.len()] as char
                })
                .collect();
            cases.push(s);
            // Something shaped like an address: groups, separators, maybe a gap.
            let groups = 1 + (x >> 8) as usize % 9;
            let gap_at = (x >> 16) as usize % 12;
            let mut v = String::new();
            for g in 0..groups {
                if g > 0 {
                    v.push(if (x >> (20 + g)) & 7 == 0 { '.' } else { ':' });
                }
                if g == gap_at {
                    v.push(':');
                }
                let digits = 1 + (x >> (30 + 2 * g)) as usize % 5;
                for d in 0..digits {
                    v.push(alphabet[((x >> (g + d)) as usize) % 22] as char);
                }
            }
            cases.push(v);
        }
        let mut fast = 0;
        for c in &cases {
            let std4 = c.parse::<std::net::Ipv4Addr>().ok().map(|a| a.octets());
            assert_eq!(parse_ipv4(c.as_bytes()), std4, "IPv4 {c:?}");
            let std6 = c.parse::<std::net::Ipv6Addr>().ok().map(|a| a.octets());
            if let Some(v) = parse_ipv6_plain(c.as_bytes()) {
                assert_eq!(Some(v), std6, "IPv6 {c:?}");
                fast += 1;
            } else {
                assert!(std6.is_none() || c.contains('.'), "IPv6 {c:?} is for the fast path");
            }
        }
        assert!(fast > 10_000, "only {fast} addresses took the fast path");
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_duration(b"1h30m"), Some(5400));
        assert_eq!(parse_duration(b"1W"), Some(604800));
        assert_eq!(parse_duration(b"h"), None);
        assert_eq!(parse_duration(b"12x"), None);
    }
}
