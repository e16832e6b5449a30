//! The two mounts: mount 1 checks the seeds and creates, appends,
//! overwrites, truncates and deletes; the deleted files' clusters are
//! freed after it; mount 2 reads every file back and prints the manifest.

use embedded_sdmmc::{DirEntry, Mode, VolumeIdx};

use crate::checksum::{DELETED_SEED, MANIFEST_PREFIX};
use crate::mem::PAGE_SIZE;

use super::contents::{
    text, Written, DIRECT_PAGES, EVENTS_APPENDED, EVENTS_FIRST, NOTES_LEN, NOTES_MIDDLE, TEMP_LEN,
    TEMP_NAME, TRUNC_FIRST, TRUNC_LEN,
};
use super::error::{cache_error, fs, FilesError};
use super::fat::{first_cluster, Geometry};
use super::volume::{read_all, write_generated};
use super::Files;

impl Files<'_, '_, '_> {
    /// Mount 1: check the seeds, then create, append, overwrite, truncate,
    /// delete. Returns the first clusters of the deleted files and the
    /// directory entries of `DIRECT.BIN` and `NOTES.TXT`.
    pub(super) fn first_mount(&mut self) -> Result<([u32; 2], DirEntry, DirEntry), FilesError> {
        const STEP: &str = "mount 1";
        let manager = self.manager();
        let volume = manager.open_volume(VolumeIdx(0)).map_err(fs(STEP))?;
        let root = volume.open_root_dir().map_err(fs(STEP))?;

        // The seeded files, as xtask wrote them.
        let seeds = self.seeds;
        for seed in &seeds[..self.seed_count] {
            let file = root
                .open_file_in_dir(seed.name(), Mode::ReadOnly)
                .map_err(fs("seeded file"))?;
            let (size, sum) = read_all(&file).map_err(fs("seeded file"))?;
            file.close().map_err(fs("seeded file"))?;
            if (size, sum.get()) != (seed.size, seed.sum) {
                println!(
                    "  seeded {}: read {size} bytes, sum {:08x}; the command line says {} bytes, sum {:08x}",
                    seed.name(),
                    sum.get(),
                    seed.size,
                    seed.sum
                );
                return Err(FilesError::Check("seeded file", "a seeded file differs"));
            }
            self.summary.seeds_checked += 1;
        }
        println!(
            "  {STEP}: {} seeded files read back through the page cache: sizes and checksums match the command line",
            self.summary.seeds_checked
        );

        // A directory, a file in it, appended to.
        root.make_dir_in_dir("LOGS").map_err(fs("mkdir"))?;
        let logs = root.open_dir("LOGS").map_err(fs("mkdir"))?;
        let events = logs
            .open_file_in_dir("EVENTS.TXT", Mode::ReadWriteCreate)
            .map_err(fs("create"))?;
        write_generated(&events, EVENTS_FIRST, |index| text(1, index)).map_err(fs("create"))?;
        events.close().map_err(fs("create"))?;
        let events = logs
            .open_file_in_dir("EVENTS.TXT", Mode::ReadWriteAppend)
            .map_err(fs("append"))?;
        write_generated(&events, EVENTS_APPENDED, |index| text(2, index)).map_err(fs("append"))?;
        events.close().map_err(fs("append"))?;
        logs.close().map_err(fs("append"))?;

        // Written, then overwritten in the middle.
        let notes = root
            .open_file_in_dir("NOTES.TXT", Mode::ReadWriteCreate)
            .map_err(fs("create"))?;
        write_generated(&notes, NOTES_LEN, |index| text(3, index)).map_err(fs("create"))?;
        notes.close().map_err(fs("create"))?;
        let notes = root
            .open_file_in_dir("NOTES.TXT", Mode::ReadWriteAppend)
            .map_err(fs("overwrite"))?;
        let start = u32::try_from(NOTES_MIDDLE.start).unwrap_or(u32::MAX);
        notes.seek_from_start(start).map_err(fs("overwrite"))?;
        write_generated(&notes, NOTES_MIDDLE.len(), |index| text(4, index))
            .map_err(fs("overwrite"))?;
        if notes.length() as usize != NOTES_LEN {
            return Err(FilesError::Check("overwrite", "the file grew"));
        }
        notes.close().map_err(fs("overwrite"))?;

        // Written, truncated, written shorter.
        let trunc = root
            .open_file_in_dir("TRUNC.TXT", Mode::ReadWriteCreate)
            .map_err(fs("create"))?;
        write_generated(&trunc, TRUNC_FIRST, |index| text(5, index)).map_err(fs("create"))?;
        trunc.close().map_err(fs("create"))?;
        let trunc = root
            .open_file_in_dir("TRUNC.TXT", Mode::ReadWriteTruncate)
            .map_err(fs("truncate"))?;
        if trunc.length() != 0 {
            return Err(FilesError::Check("truncate", "the file is not empty"));
        }
        write_generated(&trunc, TRUNC_LEN, |index| text(6, index)).map_err(fs("truncate"))?;
        trunc.close().map_err(fs("truncate"))?;

        // Created and deleted; a seeded file deleted.
        let temp = root
            .open_file_in_dir(TEMP_NAME, Mode::ReadWriteCreate)
            .map_err(fs("create"))?;
        write_generated(&temp, TEMP_LEN, |index| text(7, index)).map_err(fs("create"))?;
        temp.close().map_err(fs("create"))?;
        let mut deleted = [0u32; 2];
        for (first, name) in deleted.iter_mut().zip([TEMP_NAME, DELETED_SEED]) {
            let entry = root.find_directory_entry(name).map_err(fs("delete"))?;
            *first = first_cluster(self.cache, &entry)?;
            root.delete_entry_in_dir(name).map_err(fs("delete"))?;
        }

        // DIRECT.BIN through the filesystem: eight pages of its first contents.
        let direct = root
            .open_file_in_dir("DIRECT.BIN", Mode::ReadWriteCreate)
            .map_err(fs("create"))?;
        write_generated(&direct, DIRECT_PAGES * PAGE_SIZE, |index| text(8, index))
            .map_err(fs("create"))?;
        direct.close().map_err(fs("create"))?;
        let notes = root
            .find_directory_entry("NOTES.TXT")
            .map_err(fs("create"))?;
        let direct = root
            .find_directory_entry("DIRECT.BIN")
            .map_err(fs("create"))?;

        root.close().map_err(fs(STEP))?;
        volume.close().map_err(fs(STEP))?;
        if manager.has_open_handles() {
            return Err(FilesError::Check(STEP, "handles left open"));
        }
        drop(manager);
        println!(
            "  {STEP}: made LOGS/ and LOGS/EVENTS.TXT ({EVENTS_FIRST} bytes, then {EVENTS_APPENDED} appended); \
             NOTES.TXT ({NOTES_LEN} bytes, bytes {}..{} overwritten); TRUNC.TXT ({TRUNC_FIRST} bytes, truncated, \
             {TRUNC_LEN} written); {TEMP_NAME} made and deleted, seeded {DELETED_SEED} deleted; \
             DIRECT.BIN ({} bytes); unmounted",
            NOTES_MIDDLE.start,
            NOTES_MIDDLE.end,
            DIRECT_PAGES * PAGE_SIZE
        );
        Ok((deleted, direct, notes))
    }

    /// Frees the chains embedded-sdmmc's delete left allocated.
    pub(super) fn free_deleted(
        &mut self,
        geometry: &Geometry,
        deleted: [u32; 2],
    ) -> Result<(), FilesError> {
        const STEP: &str = "free clusters";
        for first in deleted {
            self.summary.clusters_freed += geometry
                .free_chain(self.cache, first)
                .map_err(cache_error(STEP))?;
        }
        let (held, free) = geometry.recount_free(self.cache)?;
        println!(
            "  {STEP}: the deleted files' {} clusters freed in {} FATs; FSInfo free count {held} \
             corrected to {free} (counted in the FAT)",
            self.summary.clusters_freed, geometry.fats
        );
        Ok(())
    }

    /// Mount 2: every file read back and checked; the manifest.
    pub(super) fn second_mount(&mut self) -> Result<(), FilesError> {
        const STEP: &str = "mount 2";
        let manager = self.manager();
        let volume = manager.open_volume(VolumeIdx(0)).map_err(fs(STEP))?;
        let root = volume.open_root_dir().map_err(fs(STEP))?;
        let seeds = self.seeds;
        for seed in seeds[..self.seed_count]
            .iter()
            .filter(|seed| seed.name() != DELETED_SEED)
        {
            let file = root
                .open_file_in_dir(seed.name(), Mode::ReadOnly)
                .map_err(fs(STEP))?;
            let (size, sum) = read_all(&file).map_err(fs(STEP))?;
            file.close().map_err(fs(STEP))?;
            if (size, sum.get()) != (seed.size, seed.sum) {
                return Err(FilesError::File(
                    "a seeded file",
                    size,
                    sum.get(),
                    seed.size,
                    seed.sum,
                ));
            }
            println!(
                "{MANIFEST_PREFIX}file {} {size} {:08x}",
                seed.name(),
                sum.get()
            );
            self.summary.manifest_files += 1;
        }
        for written in Written::ALL {
            let (dir, name) = written.path();
            let (size, sum) = match dir {
                Some(dir) => {
                    let dir = root.open_dir(dir).map_err(fs(STEP))?;
                    let file = dir
                        .open_file_in_dir(name, Mode::ReadOnly)
                        .map_err(fs(STEP))?;
                    let read = read_all(&file).map_err(fs(STEP))?;
                    file.close().map_err(fs(STEP))?;
                    dir.close().map_err(fs(STEP))?;
                    read
                }
                None => {
                    let file = root
                        .open_file_in_dir(name, Mode::ReadOnly)
                        .map_err(fs(STEP))?;
                    let read = read_all(&file).map_err(fs(STEP))?;
                    file.close().map_err(fs(STEP))?;
                    read
                }
            };
            let want = (
                u32::try_from(written.len()).unwrap_or(u32::MAX),
                written.checksum().get(),
            );
            if (size, sum.get()) != want {
                return Err(FilesError::File(name, size, sum.get(), want.0, want.1));
            }
            match dir {
                Some(dir) => println!(
                    "{MANIFEST_PREFIX}file {dir}/{name} {size} {:08x}",
                    sum.get()
                ),
                None => println!("{MANIFEST_PREFIX}file {name} {size} {:08x}", sum.get()),
            }
            self.summary.manifest_files += 1;
        }
        for name in [TEMP_NAME, DELETED_SEED] {
            match root.find_directory_entry(name) {
                Err(embedded_sdmmc::Error::NotFound) => {}
                Ok(_) => return Err(FilesError::Check(STEP, "a deleted file is still there")),
                Err(error) => return Err(FilesError::Fs(STEP, error)),
            }
            println!("{MANIFEST_PREFIX}gone {name}");
        }
        root.close().map_err(fs(STEP))?;
        volume.close().map_err(fs(STEP))?;
        drop(manager);
        println!(
            "  {STEP}: {} files read back through the filesystem match what was written; 2 deleted files are gone",
            self.summary.manifest_files
        );
        Ok(())
    }
}
