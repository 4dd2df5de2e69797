package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/proxy"
)

// samlCommand groups the SAML helpers an IdP administrator needs.
func samlCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "saml", Short: "SAML service-provider helpers"}
	cmd.AddCommand(samlMetadataCommand())
	return cmd
}

func samlMetadataCommand() *cobra.Command {
	var configFile, dataDir, prefix string
	cmd := &cobra.Command{
		Use:   "metadata --vp <prefix>",
		Short: "Print the SAML service-provider metadata of a virtual proxy, for the identity provider",
		Long: `metadata prints the EntityDescriptor of a SAML virtual proxy: its entity ID, its
assertion consumer URL (saml.host_uri, or frontend.public_url, + /{prefix}/samlauthn/)
and its certificate for signed AuthnRequests and encrypted assertions. The key
pair is the one openqps serve uses (made in data_dir/saml on first use when the
configuration names none). A running openqps serves the same document at
https://<host>/{prefix}/samlmetadata.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configFile)
			if err != nil {
				return fmt.Errorf("configuration: %w", err)
			}
			if dataDir != "" {
				cfg.DataDir = dataDir
			}
			md, err := proxy.SAMLMetadata(cfg, prefix)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(md)
			return err
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "openqps.yaml", "configuration file")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory (overrides the file's data_dir), as given to serve")
	cmd.Flags().StringVar(&prefix, "vp", "", "prefix of the SAML virtual proxy (empty: the default virtual proxy)")
	return cmd
}
