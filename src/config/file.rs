//! Loading a configuration from a file, and saving it to one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::Config;
use crate::error::ConfigError;

/// The largest configuration file [`Config::from_file`] reads: 16 MiB.
///
/// That holds about 50,000 keys with their plans as AWS's CLI prints them; a larger file is refused
/// before it is parsed (it is most likely the wrong file, or a device such as `/dev/zero`). To
/// load more, read the text yourself and call [`Config::from_json`].
pub const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

impl Config {
    /// Reads and loads a JSON file of at most [`MAX_FILE_SIZE`] bytes.
    ///
    /// A larger file is refused with [`ConfigError::TooLarge`] after reading at most one byte
    /// more than the cap; a file that cannot be read (or is not UTF-8) is
    /// [`ConfigError::Io`], naming the path. Loading needs the text once in memory plus the
    /// configuration it holds: no intermediate document is built.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let io = |source| ConfigError::Io {
            path: path.display().to_string(),
            writing: false,
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // The length is a hint only (a device or a pipe says 0); `take` is the real bound.
        let hint = file
            .metadata()
            .map_or(0, |m| m.len())
            .min(MAX_FILE_SIZE + 1);
        let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
        file.take(MAX_FILE_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_FILE_SIZE {
            return Err(ConfigError::TooLarge {
                path: path.display().to_string(),
                limit: MAX_FILE_SIZE,
            });
        }
        let text = String::from_utf8(bytes)
            .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        Self::from_json(&text)
    }

    /// Writes [`to_json`](Self::to_json) to a file, replacing it. The text is written to a
    /// temporary file beside it (on Unix readable by its owner only, as it holds key values) and
    /// renamed over it, so the file is never half-written.
    pub fn to_file(&self, path: impl AsRef<Path>) -> Result<(), ConfigError> {
        let path = path.as_ref();
        let io = |source| ConfigError::Io {
            path: path.display().to_string(),
            writing: true,
            source,
        };
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let write = || -> std::io::Result<()> {
            let mut file = options.open(&tmp)?;
            file.write_all(self.to_json().as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tup-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn missing_files_name_the_path() {
        let err = Config::from_file("/no/such/dir/config.json").unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "cannot read the file /no/such/dir/config.json"
        );
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn files_over_the_cap_are_refused_without_reading_them_whole() {
        let dir = temp_dir("cap");
        let big = dir.join("big.json");
        let file = std::fs::File::create(&big).unwrap();
        // A sparse file: its size is over the cap, its blocks are not written.
        file.set_len(MAX_FILE_SIZE + 10).unwrap();
        let err = Config::from_file(&big).unwrap_err();
        match &err {
            ConfigError::TooLarge { path, limit } => {
                assert!(path.ends_with("big.json"));
                assert_eq!(*limit, MAX_FILE_SIZE);
            }
            other => panic!("{other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("big.json") && msg.contains("16777216 bytes"),
            "{msg}"
        );
        // Exactly at the cap: read, and refused only as JSON (all zero bytes).
        file.set_len(MAX_FILE_SIZE).unwrap();
        assert!(!matches!(
            Config::from_file(&big),
            Err(ConfigError::TooLarge { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn an_endless_device_is_refused() {
        if std::path::Path::new("/dev/zero").exists() {
            let err = Config::from_file("/dev/zero").unwrap_err();
            assert!(matches!(err, ConfigError::TooLarge { .. }), "{err:?}");
        }
    }

    #[test]
    fn text_that_is_not_utf8_is_an_io_error() {
        let dir = temp_dir("utf8");
        let file = dir.join("latin1.json");
        std::fs::write(&file, b"{\"apiKeys\": [], \"x\": \"caf\xe9\"}").unwrap();
        let err = Config::from_file(&file).unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
