{
  description = "Clarity: persistent shared memory for Claude Code (dev shell with pinned Python, Node.js, Claude Code and a Qdrant server)";

  inputs = {
    # nixos-25.05, pinned by full revision. flake.lock records the same revision with its narHash;
    # scripts/validate-env.sh checks that the two agree.
    nixpkgs.url = "github:NixOS/nixpkgs/ac62194c3917d5f474c1a844b6fd6da2db95077d";
  };

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});

      # Same pins as the devcontainer, CI and ./scripts/setup.sh.
      claudeCodeVersion = "2.1.330";
      torchVersion = "2.13.0";
      uvVersion = "0.13.9";

      # `nix run .#qdrant`: a local Qdrant server whose data lives under Clarity's storage root.
      qdrantServer =
        pkgs:
        pkgs.writeShellApplication {
          name = "clarity-qdrant";
          runtimeInputs = [
            pkgs.qdrant
            pkgs.coreutils
          ];
          text = ''
            root="''${CLARITY_QDRANT_DIR:-$HOME/.claude/alunai-clarity/qdrant-server}"
            mkdir -p "$root/storage" "$root/snapshots"
            # Qdrant resolves its relative paths (.qdrant-initialized, config/) against the cwd.
            cd "$root"
            export QDRANT__STORAGE__STORAGE_PATH="$root/storage"
            export QDRANT__STORAGE__SNAPSHOTS_PATH="$root/snapshots"
            export QDRANT__SERVICE__HOST="''${QDRANT__SERVICE__HOST:-127.0.0.1}"
            export QDRANT__SERVICE__HTTP_PORT="''${QDRANT__SERVICE__HTTP_PORT:-6333}"
            export QDRANT__SERVICE__GRPC_PORT="''${QDRANT__SERVICE__GRPC_PORT:-6334}"
            export QDRANT__TELEMETRY_DISABLED=true
            echo "clarity-qdrant: storage in $root/storage; export QDRANT_URL=http://$QDRANT__SERVICE__HOST:$QDRANT__SERVICE__HTTP_PORT" >&2
            exec qdrant "$@"
          '';
        };
    in
    {
      packages = forAllSystems (
        system: pkgs: {
          qdrant-server = qdrantServer pkgs;
        }
      );

      apps = forAllSystems (
        system: pkgs: {
          qdrant = {
            type = "app";
            program = "${self.packages.${system}.qdrant-server}/bin/clarity-qdrant";
            meta.description = "Qdrant server with storage under ~/.claude/alunai-clarity/qdrant-server";
          };
        }
      );

      devShells = forAllSystems (
        system: pkgs:
        let
          python = pkgs.python312;
          nodejs = pkgs.nodejs_22;
          # Wheels from PyPI (torch, qdrant-edge-py, ...) expect these on the loader path.
          linuxLibraryPath = pkgs.lib.makeLibraryPath [
            pkgs.stdenv.cc.cc.lib
            pkgs.zlib
          ];
        in
        {
          default = pkgs.mkShell {
            packages = [
              python
              nodejs
              pkgs.ruff
              pkgs.mypy
              pkgs.qdrant
              self.packages.${system}.qdrant-server
              pkgs.git
              pkgs.bashInteractive
            ];

            shellHook = ''
              export PIP_DISABLE_PIP_VERSION_CHECK=1
              export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DISABLE_AUTOUPDATER=1
              # mkShell's 1980 timestamp breaks building wheels.
              unset SOURCE_DATE_EPOCH
              ${pkgs.lib.optionalString pkgs.stdenv.isLinux ''
                export LD_LIBRARY_PATH="${linuxLibraryPath}''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
              ''}
              repo="$(git rev-parse --show-toplevel 2>/dev/null || pwd)"

              # Python: a .venv made from the pinned interpreter, then the same steps as
              # ./scripts/setup.sh: torch pinned (pip), uv pinned, and every other package exactly
              # as uv.lock says (uv sync --frozen; --inexact keeps torch, which the lock leaves
              # out). Redone when pyproject.toml or uv.lock changes.
              if [ ! -x "$repo/.venv/bin/python" ]; then
                echo "clarity: creating .venv with ${python.interpreter}" >&2
                ${python.interpreter} -m venv "$repo/.venv"
              fi
              if ! grep -q "^home = ${python}/bin" "$repo/.venv/pyvenv.cfg" 2>/dev/null; then
                echo "clarity: warning: .venv was made by another Python; 'rm -rf .venv' and re-enter to rebuild it" >&2
              fi
              stamp="$repo/.venv/.clarity-nix-installed"
              if [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ] || [ "$repo/uv.lock" -nt "$stamp" ]; then
                echo "clarity: installing torch==${torchVersion}, uv==${uvVersion} and the locked dependencies (.[dev]) into .venv" >&2
                if "$repo/.venv/bin/pip" install "torch==${torchVersion}" ''${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
                  && "$repo/.venv/bin/pip" install "uv==${uvVersion}" \
                  && (cd "$repo" && .venv/bin/uv sync --frozen --inexact --extra dev) \
                  && HF_HUB_OFFLINE=1 "$repo/.venv/bin/python" -m clarity.embedding.onnx_export >&2; then
                  touch "$stamp"
                else
                  echo "clarity: installing into .venv failed; re-enter the shell to retry" >&2
                fi
              fi
              # shellcheck disable=SC1091
              source "$repo/.venv/bin/activate"

              # Claude Code, pinned, in a prefix inside .venv (git-ignored, rebuilt with it).
              # On NixOS its native binary needs programs.nix-ld.
              npm_prefix="$repo/.venv/claude-code"
              cc_manifest="$npm_prefix/lib/node_modules/@anthropic-ai/claude-code/package.json"
              if [ "$(node -p "require('$cc_manifest').version" 2>/dev/null)" != "${claudeCodeVersion}" ]; then
                echo "clarity: installing @anthropic-ai/claude-code@${claudeCodeVersion}" >&2
                npm install --global --prefix "$npm_prefix" --no-fund --no-audit \
                  "@anthropic-ai/claude-code@${claudeCodeVersion}" >&2 \
                  || echo "clarity: npm install of Claude Code failed; re-enter the shell to retry" >&2
              fi
              export PATH="$npm_prefix/bin:$PATH"

              echo "clarity: dev shell ready (python ${python.version}, node ${nodejs.version}, Claude Code ${claudeCodeVersion}); 'nix run .#qdrant' starts a Qdrant server" >&2
            '';
          };
        }
      );
    };
}
