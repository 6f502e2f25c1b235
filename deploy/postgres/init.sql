-- Databases of the nxsci stack, created once when the PostgreSQL volume is new
-- (mounted into /docker-entrypoint-initdb.d by docker-compose.yml; runs as POSTGRES_USER=nxsci).
CREATE DATABASE tiled_catalog;   -- tiled's catalog (nodes, metadata): postgresql+asyncpg://
CREATE DATABASE tiled_tables;    -- tiled's event tables written by TiledWriter: postgresql://
CREATE DATABASE nxsci_jobs;      -- the reconstruction service's job store
