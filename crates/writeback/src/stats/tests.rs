use super::*;
use gupio_pfn::Pfn;
use std::string::ToString;

type Result = core::result::Result<Outcome, WritebackError<i32>>;

fn every_result() -> [Result; 12] {
    let pfn = Pfn::new(9);
    [
        Ok(Outcome::Clean),
        Ok(Outcome::WrittenInPlace),
        Ok(Outcome::Bounced),
        Ok(Outcome::Skipped),
        Ok(Outcome::WaitedThenWritten),
        Ok(Outcome::WaitGaveUp),
        Err(WritebackError::NotInMemoryMap { pfn }),
        Err(WritebackError::CorruptFolio { pfn }),
        Err(WritebackError::Locked { pfn }),
        Err(WritebackError::UnderWriteback { pfn }),
        Err(WritebackError::WriteInPlace { pfn, error: -5 }),
        Err(WritebackError::WriteBounced { pfn, error: -5 }),
    ]
}

#[test]
fn counts_and_stats_record_each_result_in_one_place() {
    let stats = WritebackStats::new();
    let mut counts = WritebackCounts::default();
    for result in every_result() {
        stats.record(&result);
        counts.record(&result);
    }
    let expected = WritebackCounts {
        examined: 10,
        clean: 1,
        written_in_place: 1,
        bounced: 1,
        skipped: 1,
        waited_then_written: 1,
        wait_gave_up: 1,
        write_errors: 2,
        busy: 2,
        lookup_errors: 2,
    };
    assert_eq!(counts, expected);
    assert_eq!(stats.snapshot(), expected);
    assert!(expected.is_balanced());
    assert_eq!(expected.left_dirty(), 5);
}

#[test]
fn display_row_lines_up_with_header() {
    let counts = WritebackCounts {
        examined: 123_456_789,
        clean: 1,
        busy: 22,
        lookup_errors: 7,
        ..Default::default()
    };
    let row = counts.to_string();
    assert_eq!(row.len(), WritebackCounts::HEADER.len());
    // Each number ends where its heading ends.
    let header_ends: Vec<usize> = WritebackCounts::HEADER
        .char_indices()
        .filter(|&(i, c)| {
            c != ' '
                && WritebackCounts::HEADER[i + 1..]
                    .chars()
                    .next()
                    .is_none_or(|n| n == ' ')
        })
        .map(|(i, _)| i)
        .collect();
    let row_ends: Vec<usize> = row
        .char_indices()
        .filter(|&(i, c)| c != ' ' && row[i + 1..].chars().next().is_none_or(|n| n == ' '))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(header_ends, row_ends);
}

#[test]
fn debug_shows_the_snapshot() {
    let stats = WritebackStats::new();
    stats.record::<i32>(&Ok(Outcome::Bounced));
    let text = format!("{stats:?}");
    assert!(text.contains("bounced: 1"), "{text}");
}

#[test]
fn counts_balance_and_count_the_folios_left_dirty() {
    assert!(WritebackCounts::default().is_balanced());
    assert!(!WritebackCounts {
        examined: 1,
        ..Default::default()
    }
    .is_balanced());
    let c = WritebackCounts {
        bounced: 1,
        wait_gave_up: 1,
        written_in_place: 5,
        ..Default::default()
    };
    assert_eq!(c.left_dirty(), 2);
}
