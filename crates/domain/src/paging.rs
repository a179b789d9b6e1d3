//! Pagination: `page` and `page_size` in, `{items, page, page_size, has_more}` out.

use serde::Serialize;
use utoipa::ToSchema;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    number: u32,
    size: u32,
}

impl Page {
    /// The largest page number accepted.
    pub const MAX_NUMBER: u32 = 1_000_000;
    /// The largest page size accepted.
    pub const MAX_SIZE: u32 = 100;
    /// The page size when none is given.
    pub const DEFAULT_SIZE: u32 = 20;

    /// Checks a page number (1-1,000,000).
    pub fn number(value: u32) -> Result<u32, String> {
        if (1..=Self::MAX_NUMBER).contains(&value) {
            Ok(value)
        } else {
            Err(format!("must be between 1 and {}", Self::MAX_NUMBER))
        }
    }

    /// Checks a page size (1-100).
    pub fn size(value: u32) -> Result<u32, String> {
        if (1..=Self::MAX_SIZE).contains(&value) {
            Ok(value)
        } else {
            Err(format!("must be between 1 and {}", Self::MAX_SIZE))
        }
    }

    /// A page from values already checked by [`Page::number`] and [`Page::size`].
    pub fn new(number: u32, size: u32) -> Result<Self, String> {
        Ok(Self {
            number: Self::number(number)?,
            size: Self::size(size)?,
        })
    }

    /// The 1-based page number.
    pub fn page(self) -> u32 {
        self.number
    }

    /// Items per page.
    pub fn page_size(self) -> u32 {
        self.size
    }

    /// Rows to skip in SQL.
    pub fn offset(self) -> i64 {
        i64::from(self.number - 1) * i64::from(self.size)
    }

    /// Rows to fetch in SQL: one more than a page, to learn `has_more`.
    pub fn fetch_limit(self) -> i64 {
        i64::from(self.size) + 1
    }

    /// Builds the answer from up to `page_size + 1` fetched rows.
    pub fn paged<T>(self, mut rows: Vec<T>) -> Paged<T> {
        let has_more = rows.len() > self.size as usize;
        rows.truncate(self.size as usize);
        Paged {
            items: rows,
            page: self.number,
            page_size: self.size,
            has_more,
        }
    }
}

impl Default for Page {
    fn default() -> Self {
        Self {
            number: 1,
            size: Self::DEFAULT_SIZE,
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Paged<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// The 1-based page number.
    pub page: u32,
    /// The page size asked for.
    pub page_size: u32,
    /// Whether a later page has items.
    pub has_more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_enforced() {
        assert!(Page::new(1, 0).is_err());
        assert!(Page::new(1, 101).is_err());
        assert!(Page::new(0, 20).is_err());
        assert!(Page::new(1_000_001, 20).is_err());
        assert!(Page::new(1_000_000, 100).is_ok());
    }

    #[test]
    fn an_extra_row_means_there_is_more() {
        let page = Page::new(2, 2).unwrap();
        assert_eq!(page.offset(), 2);
        let paged = page.paged(vec![1, 2, 3]);
        assert_eq!(paged.items, vec![1, 2]);
        assert!(paged.has_more);
    }
}
