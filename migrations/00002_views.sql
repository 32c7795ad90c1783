-- Views for dashboards (Grafana, Metabase, psql). Days are UTC calendar days
-- of the bounce's arrival in the mailbox (bounces.occurred_at).

-- +goose Up

-- Bounces per day, recipient domain, category, severity and SMTP reply code.
CREATE VIEW bounce_daily AS
SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day,
       domain,
       category,
       severity,
       smtp_code,
       count(*) AS count
FROM bounces
GROUP BY 1, 2, 3, 4, 5;

-- What 553 replies really were: a 553 alone does not say whose fault it is,
-- the enhanced status and the text do (DESIGN.md).
CREATE VIEW bounce_553_daily AS
SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day,
       domain,
       status,
       category,
       severity,
       suppress,
       count(*) AS count
FROM bounces
WHERE smtp_code = 553
GROUP BY 1, 2, 3, 4, 5, 6;

-- Suppressions added and removed per day, reason, category and scope.
CREATE VIEW suppressions_daily AS
SELECT day, reason, category, scope, sum(added) AS added, sum(removed) AS removed
FROM (
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day, reason, category, scope, 1 AS added, 0 AS removed
    FROM suppressions
    UNION ALL
    SELECT (removed_at AT TIME ZONE 'UTC')::date, reason, category, scope, 0, 1
    FROM suppressions
    WHERE removed_at IS NOT NULL
) AS s
GROUP BY 1, 2, 3, 4;

-- The suppressions in force now: not removed, not expired.
CREATE VIEW suppressions_active AS
SELECT id, address, address_raw, domain, list_id, scope, reason, category, bounce_id,
       note, created_at, created_by, expires_at
FROM suppressions
WHERE removed_at IS NULL AND (expires_at IS NULL OR expires_at > now());

-- Bounce rate per campaign: distinct recipients that bounced (hard or soft;
-- delays, auto-replies and complaints are not bounces) over what the
-- sending platform reports as sent in campaign_sends (summed over lists).
CREATE VIEW campaign_bounce_rate AS
WITH sends AS (
    SELECT campaign_id, sum(sent)::bigint AS sent
    FROM campaign_sends
    GROUP BY campaign_id
), b AS (
    SELECT campaign_id,
           count(DISTINCT address) FILTER (WHERE severity IN ('hard', 'soft')) AS bounced,
           count(DISTINCT address) FILTER (WHERE severity = 'hard') AS hard,
           count(DISTINCT address) FILTER (WHERE severity = 'soft') AS soft,
           count(DISTINCT address) FILTER (WHERE category = 'complaint') AS complaints
    FROM bounces
    WHERE campaign_id <> ''
    GROUP BY campaign_id
)
SELECT s.campaign_id,
       s.sent,
       coalesce(b.bounced, 0) AS bounced,
       coalesce(b.hard, 0) AS hard,
       coalesce(b.soft, 0) AS soft,
       coalesce(b.complaints, 0) AS complaints,
       round(coalesce(b.bounced, 0)::numeric / nullif(s.sent, 0), 6) AS bounce_rate,
       round(coalesce(b.hard, 0)::numeric / nullif(s.sent, 0), 6) AS hard_rate,
       round(coalesce(b.complaints, 0)::numeric / nullif(s.sent, 0), 6) AS complaint_rate
FROM sends s
LEFT JOIN b USING (campaign_id);

-- +goose Down
DROP VIEW campaign_bounce_rate;
DROP VIEW suppressions_active;
DROP VIEW suppressions_daily;
DROP VIEW bounce_553_daily;
DROP VIEW bounce_daily;
