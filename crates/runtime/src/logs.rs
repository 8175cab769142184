//! Container logs in the CRI format, as the kubelet reads them for `kubectl logs`.
//!
//! Each line of the log file is `<RFC 3339 time with nanoseconds> <stdout|stderr> <F|P> <text>`.
//! `F` marks the end of a line of the container's output; `P` marks a piece of a line longer
//! than [`MAX_LINE`] bytes, continued by the next record of the same stream. The newline that
//! ended the output line is not stored.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};

/// The longest piece of one output line a record holds; longer lines are split into `P` records.
pub const MAX_LINE: usize = 16 * 1024;

/// Which output stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The container's standard output.
    Stdout,
    /// The container's standard error.
    Stderr,
}

impl Stream {
    /// The stream's name in the log file.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One record of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the shim read the output.
    pub time: DateTime<Utc>,
    /// Which stream it came from.
    pub stream: Stream,
    /// True for a `P` record: the output line continues in the next record.
    pub partial: bool,
    /// The output, without the newline.
    pub text: Vec<u8>,
}

/// Splits one stream of a container's output into CRI records.
#[derive(Debug)]
pub struct LineSplitter {
    stream: Stream,
    pending: Vec<u8>,
}

impl LineSplitter {
    /// A splitter for `stream`.
    pub fn new(stream: Stream) -> Self {
        LineSplitter {
            stream,
            pending: Vec::new(),
        }
    }

    /// Feeds output bytes and writes every complete record to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut impl Write) -> std::io::Result<()> {
        self.pending.extend_from_slice(data);
        loop {
            match self.pending.iter().position(|&b| b == b'\n') {
                Some(nl) if nl <= MAX_LINE => {
                    let line: Vec<u8> = self.pending.drain(..=nl).collect();
                    write_record(out, self.stream, false, &line[..nl])?;
                }
                _ if self.pending.len() > MAX_LINE => {
                    let piece: Vec<u8> = self.pending.drain(..MAX_LINE).collect();
                    write_record(out, self.stream, true, &piece)?;
                }
                _ => return Ok(()),
            }
        }
    }

    /// Writes what is left when the stream ends, as a full line.
    pub fn finish(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            write_record(out, self.stream, false, &rest)?;
        }
        Ok(())
    }
}

/// Writes one record with the current time.
fn write_record(
    out: &mut impl Write,
    stream: Stream,
    partial: bool,
    text: &[u8],
) -> std::io::Result<()> {
    let time = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
    let tag = if partial { "P" } else { "F" };
    let mut record = Vec::with_capacity(text.len() + 48);
    record.extend_from_slice(format!("{time} {} {tag} ", stream.as_str()).as_bytes());
    record.extend_from_slice(text);
    record.push(b'\n');
    // One write per record, so a concurrent reader never sees half a header.
    out.write_all(&record)
}

/// Parses one record (without its trailing newline); `None` if it is not in the CRI format.
pub fn parse_line(line: &[u8]) -> Option<LogLine> {
    let mut fields = line.splitn(4, |&b| b == b' ');
    let time = std::str::from_utf8(fields.next()?).ok()?;
    let stream = match fields.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match fields.next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    let text = fields.next().unwrap_or_default().to_vec();
    let time = DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc);
    Some(LogLine {
        time,
        stream,
        partial,
        text,
    })
}

/// Reads every record of a CRI log file, skipping lines that are not in the format.
pub fn read_log(path: &Path) -> std::io::Result<impl Iterator<Item = LogLine>> {
    let reader = BufReader::new(File::open(path)?);
    Ok(reader
        .split(b'\n')
        .map_while(Result::ok)
        .filter_map(|line| parse_line(&line)))
}

/// Follows a growing CRI log file: each call returns the records completed since the last.
#[derive(Debug)]
pub struct LogFollower {
    file: File,
    offset: u64,
    pending: Vec<u8>,
}

impl LogFollower {
    /// Starts reading `path` from its beginning.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Ok(LogFollower {
            file: File::open(path)?,
            offset: 0,
            pending: Vec::new(),
        })
    }

    /// The records written since the previous call (a record still being written waits).
    pub fn read_new(&mut self) -> std::io::Result<Vec<LogLine>> {
        self.file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        self.offset += self.file.read_to_end(&mut buf)? as u64;
        self.pending.extend_from_slice(&buf);

        let mut lines = Vec::new();
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            lines.extend(parse_line(&line[..nl]));
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(out: &[u8]) -> Vec<LogLine> {
        out.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| parse_line(l).expect("every written line parses"))
            .collect()
    }

    #[test]
    fn full_lines_become_f_records() {
        let mut out = Vec::new();
        let mut split = LineSplitter::new(Stream::Stdout);
        split.push(b"hello\nwor", &mut out).unwrap();
        split.push(b"ld\n\nlast", &mut out).unwrap();
        split.finish(&mut out).unwrap();
        let recs = records(&out);
        let texts: Vec<&[u8]> = recs.iter().map(|r| r.text.as_slice()).collect();
        assert_eq!(texts, vec![&b"hello"[..], b"world", b"", b"last"]);
        assert!(recs
            .iter()
            .all(|r| !r.partial && r.stream == Stream::Stdout));
    }

    #[test]
    fn long_lines_are_split_into_partial_records() {
        let mut out = Vec::new();
        let mut split = LineSplitter::new(Stream::Stderr);
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        split.push(&long, &mut out).unwrap();
        split.push(b"\n", &mut out).unwrap();
        let recs = records(&out);
        assert_eq!(recs.len(), 3);
        assert_eq!((recs[0].partial, recs[0].text.len()), (true, MAX_LINE));
        assert_eq!((recs[1].partial, recs[1].text.len()), (true, MAX_LINE));
        assert_eq!((recs[2].partial, recs[2].text.len()), (false, 10));
        assert_eq!(recs[2].stream, Stream::Stderr);
    }

    #[test]
    fn parser_reads_upstream_records_and_rejects_others() {
        let rec = parse_line(b"2016-10-06T00:17:09.669794202Z stdout F some text here").unwrap();
        assert_eq!(rec.text, b"some text here");
        assert_eq!(rec.time.timestamp_subsec_nanos(), 669794202);
        let rec = parse_line(b"2016-10-06T00:17:09.669794202Z stderr P ").unwrap();
        assert!(rec.partial && rec.text.is_empty() && rec.stream == Stream::Stderr);
        assert!(parse_line(b"garbage").is_none());
        assert!(parse_line(b"2016-10-06T00:17:09Z stdin F x").is_none());
    }

    #[test]
    fn follower_returns_only_complete_new_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut file = File::create(&path).unwrap();
        let mut follower = LogFollower::open(&path).unwrap();
        assert!(follower.read_new().unwrap().is_empty());

        file.write_all(b"2016-10-06T00:17:09.1Z stdout F one\n2016-10-06T00:17:09.2Z std")
            .unwrap();
        let got = follower.read_new().unwrap();
        assert_eq!(got.len(), 1);
        file.write_all(b"err F two\n").unwrap();
        let got = follower.read_new().unwrap();
        assert_eq!((got.len(), got[0].text.as_slice()), (1, &b"two"[..]));
        assert_eq!(read_log(&path).unwrap().count(), 2);
    }
}
