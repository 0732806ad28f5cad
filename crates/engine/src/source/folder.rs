//! Folders of image files: ImageFolder (DIR/<class>/<image>, class = label, classes sorted by name) and a
//! flat folder of images without labels. Files sorted by name, so the order is the same on every run.

use std::path::{Path, PathBuf};

use super::{
    Fingerprint, Format, RecordIter, Result, Source, SourceError, SourceInfo, is_image_file, list_dir, relative_name,
};

pub struct FolderSource {
    info: SourceInfo,
    files: Vec<(PathBuf, Option<u32>)>,
}

impl FolderSource {
    /// `classes`: ImageFolder layout (one subdirectory per class) when true, a flat folder when false.
    pub fn open(dir: &Path, classes: bool) -> Result<FolderSource> {
        let root = dir.canonicalize().map_err(SourceError::io(format!("opening {}", dir.display())))?;
        let format = if classes { Format::ImageFolder } else { Format::Flat };
        let mut files = Vec::new();
        let mut label_names = Vec::new();
        if classes {
            for class_dir in list_dir(&root)?.into_iter().filter(|p| p.is_dir()) {
                let label = label_names.len() as u32;
                label_names.push(class_dir.file_name().unwrap().to_string_lossy().into_owned());
                let mut class_files = Vec::new();
                collect_images(&class_dir, &mut class_files)?;
                files.extend(class_files.into_iter().map(|p| (p, Some(label))));
            }
        } else {
            // Broken symlinks, FIFOs and devices named like images stay in, to be skipped by name rather than
            // vanish (`Record::decode` refuses to read anything but a regular file).
            files.extend(list_dir(&root)?.into_iter().filter(|p| !p.is_dir() && is_image_file(p)).map(|p| (p, None)));
        }
        if files.is_empty() {
            let why = if classes {
                "no images found in class subdirectories (expected DIR/<class>/<image>)"
            } else {
                "no image files in it"
            };
            return Err(SourceError::Invalid { path: root, format, why: why.into() });
        }
        let mut fp = Fingerprint::new(format);
        for (path, label) in &files {
            // Names and sizes only: reading the head of every image would make opening a big folder slow.
            let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            fp.add_str(&relative_name(&root, path));
            fp.add_u64(len);
            fp.add_u64(label.map_or(u64::MAX, u64::from));
        }
        let info = SourceInfo { format, len: files.len(), label_names, fingerprint: fp.finish() };
        Ok(FolderSource { info, files })
    }
}

/// Image files below `dir` (nested folders included), sorted by path.
fn collect_images(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for p in list_dir(dir)? {
        if p.is_dir() {
            collect_images(&p, out)?;
        } else if is_image_file(&p) {
            out.push(p);
        }
    }
    Ok(())
}

impl Source for FolderSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn records(&self, start: usize) -> Result<RecordIter<'_>> {
        Ok(super::file_records(&self.files, start))
    }
}
