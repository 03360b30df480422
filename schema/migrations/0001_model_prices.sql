-- model prices table and dictionary

-- Frozen: released, never edited again (tests hold this file to its sha256).
-- Placeholders ${...} are the deployment knobs: see sessionlens/schema/template.py.
CREATE TABLE IF NOT EXISTS `${database}`.`model_prices`${on_cluster} (
    model String,
    input_per_mtok Float64,
    output_per_mtok Float64,
    cached_input_per_mtok Float64,
    source String DEFAULT 'user',
    updated_at DateTime64(3) DEFAULT now64(3)
) ENGINE = ${engine:ReplacingMergeTree(updated_at)}
ORDER BY model;

-- Prices are read at query time through this dictionary (never frozen into stored
-- rows), so an INSERT into model_prices re-prices every view: within LIFETIME, or at
-- once after SYSTEM RELOAD DICTIONARY. The latest row per model wins.
CREATE DICTIONARY IF NOT EXISTS `${database}`.`model_prices_dict`${on_cluster} (
    model String,
    input_per_mtok Float64,
    output_per_mtok Float64,
    cached_input_per_mtok Float64
)
PRIMARY KEY model
SOURCE(CLICKHOUSE(QUERY 'SELECT m AS model, argMax(i, u) AS input_per_mtok, argMax(o, u) AS output_per_mtok, argMax(c, u) AS cached_input_per_mtok FROM (SELECT lower(model) AS m, input_per_mtok AS i, output_per_mtok AS o, cached_input_per_mtok AS c, updated_at AS u FROM `${database}`.`model_prices`) GROUP BY m'))
LIFETIME(MIN 30 MAX 60)
LAYOUT(COMPLEX_KEY_HASHED());
