//! Browser tests (analytics-next + consent tools in headless Chromium).
