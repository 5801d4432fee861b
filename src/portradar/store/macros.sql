-- Helper macros, created on every connection (read-only ones too).

-- Readable address text for ad-hoc SQL: dotted IPv4, full (uncompressed) IPv6.
CREATE OR REPLACE TEMP MACRO ip_text(hi, lo) AS
    CASE WHEN hi = 0 AND (lo >> 32) = 65535
         THEN concat_ws('.', (lo >> 24) & 255, (lo >> 16) & 255, (lo >> 8) & 255, lo & 255)
         ELSE lower(concat_ws(':',
              lpad(printf('%x', (hi >> 48) & 65535), 4, '0'),
              lpad(printf('%x', (hi >> 32) & 65535), 4, '0'),
              lpad(printf('%x', (hi >> 16) & 65535), 4, '0'),
              lpad(printf('%x', hi & 65535), 4, '0'),
              lpad(printf('%x', (lo >> 48) & 65535), 4, '0'),
              lpad(printf('%x', (lo >> 32) & 65535), 4, '0'),
              lpad(printf('%x', (lo >> 16) & 65535), 4, '0'),
              lpad(printf('%x', lo & 65535), 4, '0')))
    END;

CREATE OR REPLACE TEMP MACRO activity_port(proto, dport, icmp_type) AS
    CASE WHEN proto IN (6, 17, 132, 136) THEN coalesce(dport::INTEGER, -1)
         WHEN proto IN (1, 58) THEN coalesce(icmp_type::INTEGER, -1)
         ELSE -1 END;
