# bankql: the GraphQL bank API. Build: docker build -t bankql . ; run it with compose.yml.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# GraphiQL's scripts and styles, from the npm registry at their locked versions and hashes.
FROM ${NODE_IMAGE} AS graphiql
WORKDIR /graphiql
COPY gql/graphiql/package.json gql/graphiql/package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM ${PYTHON_IMAGE} AS build
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, from the hashed lock, so that a change to the code reuses this layer.
COPY requirements-runtime.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY persistence ./persistence
COPY gql ./gql
RUN pip install --no-cache-dir --no-deps . \
    && find /opt/venv -name "__pycache__" -type d -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 bankql \
    && useradd --system --uid 10001 --gid bankql --no-create-home --home-dir /nonexistent bankql
COPY --from=build /opt/venv /opt/venv
COPY --from=graphiql /graphiql/node_modules/react/umd/react.production.min.js /opt/bankql/graphiql/react/umd/
COPY --from=graphiql /graphiql/node_modules/react-dom/umd/react-dom.production.min.js /opt/bankql/graphiql/react-dom/umd/
COPY --from=graphiql /graphiql/node_modules/graphiql/graphiql.min.js /graphiql/node_modules/graphiql/graphiql.min.css /opt/bankql/graphiql/graphiql/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BANKQL_ENV=production \
    BANKQL_HOST=0.0.0.0 \
    BANKQL_PORT=8000 \
    BANKQL_GRAPHIQL_ASSETS=/opt/bankql/graphiql
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["bankql", "healthcheck"]
# Applies pending migrations (one replica at a time), then serves with one process per CPU
# the container may use (BANKQL_WORKERS sets another number); SIGTERM drains requests.
CMD ["bankql", "serve"]
