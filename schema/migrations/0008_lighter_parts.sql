-- lighter parts: the spans table writes compact parts and compresses with LZ4

-- Frozen once released: never edited again (tests hold this file to its sha256).
-- Placeholders ${...} are the deployment knobs: see sessionlens/schema/template.py.
--
-- Only how otel_traces' parts are laid out on disk changes: its columns, their types and
-- every view's answer stay as they were (tests/test_schema_insert_work.py holds migration 6's,
-- 7's and this one's views to the same answers on the same spans, and a store upgraded with
-- data to a fresh one). bench/insert_work.py measures each piece of the schema; on its
-- realistic LLM spans in the exporter's 16k-span inserts these two were the largest costs
-- that no answer depends on (the session rollup is the largest of all, but what it stores
-- is what the views read):
--   * A part of 16k spans is just over ClickHouse's 10 MiB threshold for wide parts: two
--     files per column (the maps' keys, values and sizes each count), ~220 files per insert
--     and as many per merge, where file creation is a large share of the inserting thread's
--     kernel time. Compact parts (one data file for all columns) up to 128 MiB: inserts and
--     their first merges write 13 files; the large parts that later merges make, the ones
--     long time-range reads scan, are still wide.
--   * ZSTD(1), the clickhouseexporter's codec, is the costlier compressor on every insert
--     and on every merge, which rewrites each row several times over its life. LZ4 (the
--     delta and T64 transforms kept) costs less CPU on both for ~20% more bytes on disk.
--     An operator who would rather spend CPU than disk can MODIFY COLUMN … CODEC(ZSTD(1))
--     back: nothing reads the codec, and applied migrations never run again. (The Nested
--     Events and Links, empty on most LLM spans, keep theirs.)
-- Together, measured side by side in one run (2 shared cores): the engine's CPU for the
-- same spans, inserts and merges, 41.5 against migration 7's 52.0 µs per span; otel_traces
-- takes 8.4 instead of 7.0 MiB for 200k spans.
-- Neither rewrites stored data: parts written before keep their codec and layout until a
-- merge rewrites them anyway. Every statement can run again (MODIFY).

ALTER TABLE `${database}`.`${traces_table}`${on_cluster}
    MODIFY SETTING min_bytes_for_wide_part = 134217728;

ALTER TABLE `${database}`.`${traces_table}`${on_cluster}
    MODIFY COLUMN Timestamp CODEC(Delta(8), LZ4),
    MODIFY COLUMN TraceId CODEC(LZ4),
    MODIFY COLUMN SpanId CODEC(LZ4),
    MODIFY COLUMN ParentSpanId CODEC(LZ4),
    MODIFY COLUMN TraceState CODEC(LZ4),
    MODIFY COLUMN SpanName CODEC(LZ4),
    MODIFY COLUMN SpanKind CODEC(LZ4),
    MODIFY COLUMN ServiceName CODEC(LZ4),
    MODIFY COLUMN ResourceAttributes CODEC(LZ4),
    MODIFY COLUMN ScopeName CODEC(LZ4),
    MODIFY COLUMN ScopeVersion CODEC(LZ4),
    MODIFY COLUMN SpanAttributes CODEC(LZ4),
    MODIFY COLUMN Duration CODEC(T64, LZ4),
    MODIFY COLUMN StatusCode CODEC(LZ4),
    MODIFY COLUMN StatusMessage CODEC(LZ4);
