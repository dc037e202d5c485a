"""What `autofulfill init` writes: the DESIGN.md §4 shape, secrets only as env: references."""

EXAMPLE = '''\
# autofulfill configuration. Secrets are never written here: "env:NAME" reads variable NAME.
# Relative paths are relative to this file's folder.

[service]
database_url = "sqlite:///var/autofulfill.db"   # or postgresql+psycopg://user@host/db
broker_url   = ""                               # "" = embedded SQLite broker under data_dir; production: redis://127.0.0.1:6379/0
data_dir     = "var"                            # label PDFs, embedded broker, state
listen       = "127.0.0.1:8000"                 # webhook receiver
poll_interval_s     = 300                       # reconciliation poll per store
tracking_interval_s = 600                       # tracking sweep per Amazon account
release_interval_s  = 5                         # how often due work (holds, retries) is re-driven
task_time_limit_s   = 300                       # a task running longer is killed and re-driven
visibility_timeout_s = 3600                     # Redis broker: must exceed 2 x task_time_limit_s
log_format   = "json"                           # or "text"

# [alerts]                                      # one message per problem: parked order, store API down,
# webhook_url = "env:AUTOFULFILL_ALERT_WEBHOOK"  #   disabled WooCommerce webhook; plus a daily digest
# email_to = ["ops@example.com"]                #   (Slack-compatible {"text": ...} and/or SMTP)
# smtp_host = "smtp.example.com"
# smtp_user = "env:SMTP_USER"
# smtp_password = "env:SMTP_PASSWORD"
# api_failing_minutes = 15
# digest_hour_utc = 8

[amazon.us]                                     # one block per seller account + region
region         = "na"                           # na | eu | fe
marketplace_id = "ATVPDKIKX0DER"
client_id      = "env:AMZ_CLIENT_ID"
client_secret  = "env:AMZ_CLIENT_SECRET"
refresh_token  = "env:AMZ_REFRESH_TOKEN"
# endpoint  = "https://sellingpartnerapi-na.amazon.com"   (default from region)
# token_url = "https://api.amazon.com/auth/o2/token"
# quota = { createFulfillmentOrder = [2, 30] }            (requests per second, burst)

[labels.main]                                   # self-ship: carrier labels through EasyPost
provider = "easypost"
api_key  = "env:EASYPOST_API_KEY"               # test keys start with EZTK, production keys with EZAK
# endpoint = "https://api.easypost.com/v2"
choose   = "cheapest"                           # cheapest | fastest | ["USPS:GroundAdvantage", "UPS:Ground"]
from_address   = { name = "Acme", street1 = "1 Main St", city = "Austin", state = "TX", zip = "78701", country = "US", phone = "5125550100" }
default_parcel = { length_in = 10, width_in = 8, height_in = 4, weight_oz = 16 }
# label_format = "PDF"                          # PDF | PNG | ZPL; files go to {data_dir}/labels/<store>/<prefix>-<order id>-<n>.pdf
# push_tracking = "at_purchase"                 # or "first_scan": tell the customer once the carrier has the parcel
# customs = { signer = "Jane Smith" }           # labels to another country: who certifies the customs declaration;
#                                               #   also contents_type = "merchandise", eel_pfc = "NOEEI 30.37(a)",
#                                               #   non_delivery_option = "return", restriction_type = "none" (defaults)

[stores.acme]
platform       = "shopify"                      # shopify | woocommerce
shop_url       = "https://acme.myshopify.com"
access_token   = "env:ACME_SHOPIFY_TOKEN"       # an app made in the store admin (static token), or instead:
# client_id = "env:ACME_CLIENT_ID"              # an app made in the Dev Dashboard: client-credentials grant
# client_secret = "env:ACME_CLIENT_SECRET"
webhook_secret = "env:ACME_SHOPIFY_SECRET"      # the app's client secret
api_version    = "2026-01"
amazon         = "us"
labels         = "main"                         # lines not mapped to Amazon get a label from [labels.main]
order_prefix   = "ACME"                         # sellerFulfillmentOrderId = {prefix}-{order id}-{n}
hold_minutes   = 0                              # may be fractional
notify_customer = true
# dry_run       = true                          # record what would be sent, send nothing (try it safely)
ship_when      = ["PAID", "PARTIALLY_REFUNDED"]  # Shopify financial statuses that ship
initial_lookback_hours = 24
packing_slip_comment = "Thank you for your order"
# parcels = { "MUG-BLK" = { length_in = 6, width_in = 6, height_in = 5, weight_oz = 14 } }   # per SKU, summed
# parcels_csv = "parcels.csv"                   # columns sku,length_in,width_in,height_in,weight_oz
# customs_items = { "MUG-BLK" = { description = "Ceramic mug", hs_tariff_number = "691200", origin_country = "CN" } }
# customs_items_csv = "customs.csv"             # columns sku,description,hs_tariff_number,origin_country

[stores.acme.routing]
default  = "self_ship"                          # route for lines whose SKU is not mapped: self_ship | fba | hold
sku_map  = { "TEE-RED-M" = "AMZ-TEE-RED-M" }    # store SKU -> Amazon seller SKU (these lines go to FBA)
speeds   = { "Standard" = "Standard", "Express" = "Expedited", "Overnight" = "Priority" }
fba_countries = ["US"]
split    = true                                 # FBA and self-ship parts of one order may ship separately
features = ["BLOCK_AMZL"]                       # MCF featureConstraints

[stores.acme.inventory]                         # FBA stock -> store stock, per SKU in sku_map (off unless enabled)
enabled        = false                          # true: every interval_s, the store may sell what Amazon can ship
location       = "Amazon FBA"                   # Shopify: the location (name or gid) whose `available` mirrors FBA
interval_s     = 600                            # one sync pass per store this often (sooner after an MCF cancel)
buffer         = 0                              # units held back per SKU
buffer_percent = 0                              # or this share of Amazon's fulfillable units, if larger
buffers        = { "TEE-RED-M" = 5 }            # per store SKU, overrides buffer/buffer_percent
# dry_run      = true                           # compute and record every pass, write nothing (`autofulfill inventory`)

[stores.bolt]
platform        = "woocommerce"
shop_url        = "https://bolt.example"        # REST = {shop_url}/wp-json/wc/v3/...
consumer_key    = "env:BOLT_WC_KEY"             # WooCommerce > Settings > Advanced > REST API (Read/Write)
consumer_secret = "env:BOLT_WC_SECRET"
# query_string_auth = true                      # if your host strips the Authorization header
webhook_secret  = "env:BOLT_WC_WEBHOOK_SECRET"  # the secret you typed into the WooCommerce webhook
amazon          = "us"
order_prefix    = "BOLT"
complete_on_ship = true                         # set the order completed once every line shipped
# ship_when     = ["PROCESSING"]                # WooCommerce order statuses that ship (the default)
# poll_interval_s = 60                          # the default for WooCommerce: its webhooks come late or not at all
# tag_meta_keys = ["autofulfill_tags"]          # order meta giving routing tags ("no-fba, BLOCK_AMZL")
# note_keywords = ["no-fba"]                    # words in the customer note that become tags (off)

[stores.bolt.routing]
sku_map  = { "BOLT-CHARGER" = "AMZ-BOLT-CHARGER" }
'''
